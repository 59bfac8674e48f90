#!/usr/bin/env python3
"""Is there interference to remove? The prompt baseline trained on all tasks at once against the
same prompts trained on each task alone, per compression setting, mode and seed.

For each setting of a sweep spec (compressed once, as jobs/sweep.py does) and each seed:
  1. P0 pretrained once (`mops prompts pretrain`, [common] and [prompt]'s p0-* options) and shared
     by every run of that seed, both modes;
  2. centralized (`modes` has centralized):
     shared: `mops train --method prompt` on all tasks for `steps` steps;
     alone: for every task, the same command with `--tasks TASK` and steps / (number of tasks),
     so that the tasks together get the same number of steps as the shared run;
  3. federated (`modes` has federated; the spec's [federate] gives clients, clients-per-round,
     local-steps and rounds, and the rest of its options go to every federated run):
     shared: `mops federate --method fedprompt` on all tasks, in one process;
     cluster: for every task, the same command with `--tasks TASK`: the task's records federated
     on their own over clients / (number of tasks) clients (at least clients-per-round), with the
     same clients per round and rounds and local-steps / (number of tasks) local steps, so that the
     clusters together take the shared run's local steps (up to the rounding down) and their
     clients hold about as many records each as the shared run's. With mostly single-task clients
     (Dirichlet 0.1) a shared round's average moves each task about as far as a cluster's round does.
Every run uses the same P0, the same mid prompts (E x P of them), the same optimizer and the same
split (the spec's [common] must keep every record, `samples-per-source` at least the data's size,
so that a task alone sees the examples it sees among all tasks; the script checks that the test
examples agree: a task's "P0 only" perplexity must be the shared run's). Every run is evaluated
once, at its end (a federated [federate] eval-every is replaced).

An [alone] section in the spec adds its options to the runs of one task only (over [prompt]'s and,
federated, over the cluster's [federate] options) (for example `experts = 1` and
`prompts-per-expert = 10`: a task alone with the 10 prompts MoPs routes it to, which tells
interference from capacity); their files are then named after those options, so the shared runs
and the other runs alone in the same --out are reused.

Interference of a task = 100 x (shared - alone) / shared, in test perplexity: positive when the
task does better trained alone, i.e. when the other tasks get in its way. The method-independent
question of issue 17: a gate can only remove interference that is there.

    .venv/bin/python jobs/interference.py jobs/interference_centralized.ini --out out/interference
    .venv/bin/python jobs/interference.py jobs/interference_federated.ini --out out/interference
    .venv/bin/python jobs/interference.py SPEC --out DIR --report-only     (tables from what is there)

Files in DIR/<setting>/: seed<S>-p0.safetensors; centralized seed<S>-shared.h5 and
seed<S>-alone[-ALONE OPTIONS]-<task>.h5; federated seed<S>-federated-shared.h5 and
seed<S>-federated-cluster[-ALONE OPTIONS]-<task>.h5. Finished runs are skipped; an unfinished
centralized one is run again (--overwrite), an unfinished federated one goes on from its checkpoint
(--resume), as jobs/sweep.py does. Writes DIR/interference.md (per setting and mode: a row per task
and their mean, mean +- sample std over seeds) and prints it.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import h5py

import sweep


P0_OPTIONS = ("p0-prompts", "p0-steps", "p0-lr", "p0-batch-size")  # [prompt]'s options that shape P0


def p0_command(spec, mops, model, seed, out):
    """`mops prompts pretrain` with [common] and [prompt]'s P0 options."""
    p0 = {name: value for name, value in spec["options"]["prompt"].items() if name in P0_OPTIONS}
    return ([mops, "prompts", "pretrain", "--model", model, "--tokenizer", spec["tokenizer"], "--data", spec["data"],
             "--seed", str(seed), "--out", out, "--overwrite"] + sweep.command_options(spec["options"]["common"])
            + sweep.command_options(p0))


ALONE = {"centralized": "alone", "federated": "cluster"}  # what a run of one task is called


def run_options(spec, mode, steps, tasks=None):
    """[prompt] and the length of MODE's shared run, or with TASKS (their number) of a run of one
    task, [alone] over them: centralized, steps / TASKS steps; federated, the task's cluster gets
    clients / TASKS clients (at least clients-per-round) and local-steps / TASKS local steps. Every
    run is evaluated once, at its end."""
    if mode == "centralized":
        length = str(steps // (tasks or 1))
        options = dict(spec["options"]["prompt"], **{"steps": length, "eval-every": length})
    else:
        federate = spec["options"]["federate"]
        options = dict(spec["options"]["prompt"], **federate, **{"eval-every": federate["rounds"]})
        if tasks:
            options.update({"clients": str(max(int(federate["clients"]) // tasks, int(federate["clients-per-round"]))),
                            "local-steps": str(int(federate["local-steps"]) // tasks)})
    return dict(options, **(spec["options"]["alone"] if tasks else {}))


def setup_text(mode, options):
    """'20000 steps' or 'FedPrompt, 100 clients, 10 per round, 20 rounds x 250 local steps'"""
    if mode == "centralized":
        return f"{options['steps']} steps"
    return (f"FedPrompt, {options['clients']} clients, {options['clients-per-round']} per round, "
            f"{options['rounds']} rounds x {options['local-steps']} local steps")


def run_command(spec, mops, mode, model, seed, p0, options, out, task=None):
    """`mops train --method prompt` (an unfinished OUT is run again) or `mops federate --method
    fedprompt` in one process (an unfinished OUT goes on from its checkpoint, as jobs/sweep.py does);
    OPTIONS' `method` (from [alone]: `mop`) replaces the baseline."""
    options = dict(options)
    method = options.pop("method", sweep.BASELINE[mode])
    if method not in (sweep.BASELINE[mode], "mop"):
        raise sweep.SpecError(f"[alone] method = {method} is not one of {sweep.BASELINE[mode]}, mop")
    if mode == "centralized":
        command = ["train", "--method", method, "--overwrite"]
    else:
        command = ["federate", "--method", method] + (["--resume"] if sweep.status_of(out) != "missing" else [])
    return ([mops] + command + ["--model", model, "--tokenizer", spec["tokenizer"], "--data", spec["data"],
             "--seed", str(seed), "--p0", p0, "--out", out] + (["--tasks", task] if task else [])
            + sweep.command_options(spec["options"]["common"]) + sweep.command_options(options))


def results_file(spec, base, mode, task=None):
    """BASE-shared.h5 and BASE-alone[-ALONE OPTIONS]-TASK.h5; federated BASE-federated-shared.h5 and
    BASE-federated-cluster[-ALONE OPTIONS]-TASK.h5."""
    base += "" if mode == "centralized" else "-federated"
    return f"{base}-{ALONE[mode]}{alone_tag(spec)}-{task}.h5" if task else base + "-shared.h5"


def alone_tag(spec):
    """'' or '-experts1-prompts-per-expert10': the [alone] options in the runs' file names."""
    return "".join(f"-{name}{value.replace(' ', '')}" for name, value in spec["options"]["alone"].items())


def tasks_in(f):
    """The task names of an open results file."""
    return [t.decode() if isinstance(t, bytes) else str(t) for t in f["tasks"][()]]


def last_eval(path):
    """{task: test perplexity} of the file's last /eval row."""
    with h5py.File(path, "r") as f:
        return {task: float(p) for task, p in zip(tasks_in(f), f["eval/ppl"][-1])}


def tasks_of(path):
    with h5py.File(path, "r") as f:
        return tasks_in(f)


class Runner:
    """Runs mops commands into their logs, skipping finished results; prints progress with an ETA."""

    def __init__(self, args, total):
        self.args, self.total, self.done, self.ran, self.started = args, total, 0, 0, time.time()
        self.env = dict(os.environ)  # nothing runs under mpirun

    def run(self, label, command, result, log):
        """Runs COMMAND unless RESULT is finished (an .h5) or exists (a P0 file)."""
        self.done += 1
        finished = sweep.status_of(result) == "finished" if result.endswith(".h5") else os.path.exists(result)
        tag = f"[{self.done}/{self.total}] {label}"
        if finished:
            print(f"{tag}: complete, skipped", flush=True)
            return
        if self.args.report_only:
            print(f"{tag}: missing", flush=True)
            return
        os.makedirs(os.path.dirname(result), exist_ok=True)
        start = time.time()
        print(f"{tag}: running (log {log})", flush=True)
        if sweep.run_logged(command, log, self.env) != 0:
            raise RuntimeError(f"{label} failed; last lines of {log}:\n{sweep.tail(log)}")
        self.ran += 1
        left = (time.time() - self.started) / self.ran * (self.total - self.done)
        print(f"{tag}: finished in {time.time() - start:.0f} s; about {sweep.duration(left)} left", flush=True)


def run_mode(spec, args, runner, mode, seed_run, steps):
    """MODE's shared run and its runs of one task; SEED_RUN: the label, seed, model, P0, file name
    base and log of the seed. Returns (shared, {task: file})."""
    def run(what, options, out, task=None):
        runner.run(f"{seed_run['label']} {mode}, {what} ({setup_text(mode, options)})",
                   run_command(spec, args.mops, mode, seed_run["model"], seed_run["seed"], seed_run["p0"], options,
                               out, task), out, seed_run["log"])

    shared = results_file(spec, seed_run["base"], mode)
    run("all tasks", run_options(spec, mode, steps), shared)
    if not os.path.exists(shared):
        return shared, {}
    tasks = tasks_of(shared)
    alone = {task: results_file(spec, seed_run["base"], mode, task) for task in tasks}
    for task in tasks:
        run(f"{task} {ALONE[mode]}", run_options(spec, mode, steps, len(tasks)), alone[task], task)
    return shared, alone


def run_seed(spec, args, runner, setting, model, seed, steps):
    """P0 (one for every run of the seed) and each mode's runs; returns {mode: (shared, {task: file})}."""
    base = os.path.join(args.out, setting, f"seed{seed}")
    seed_run = {"label": f"{setting} seed {seed}", "seed": seed, "model": model, "p0": base + "-p0.safetensors",
                "base": base, "log": os.path.join(args.out, "logs", f"{setting}-seed{seed}.log")}
    runner.run(f"{setting} seed {seed} P0", p0_command(spec, args.mops, model, seed, seed_run["p0"]), seed_run["p0"],
               seed_run["log"])
    return {mode: run_mode(spec, args, runner, mode, seed_run, steps) for mode in spec["modes"]}


def p0_only(path):
    """{task: perplexity} of the reference "P0 only" the run wrote into its file."""
    with h5py.File(path, "r") as f:
        references = f.attrs["references"]
        return json.loads(references.decode() if isinstance(references, bytes) else references)["p0_only"]


def check_same_test_examples(shared, alone):
    """A task alone must be evaluated on the examples it has among all tasks: with the same model
    and P0, its "P0 only" perplexity is then the shared run's for that task."""
    reference = p0_only(shared)
    for task, path in alone.items():
        mine = p0_only(path)[task]
        if not math.isclose(mine, reference[task], rel_tol=1e-6):
            raise RuntimeError(f"{path}: P0-only perplexity of {task} is {mine}, {reference[task]} among all tasks: "
                               "the test examples differ; keep every record ([common] samples-per-source)")


def mean_std(values):
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def gain_text(values):
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:+.1f}"
    return f"{statistics.mean(values):+.1f} ± {statistics.stdev(values):.1f}"


def setting_table(spec, setting, mode, seeds_results, steps):
    """Markdown rows of one setting and mode: per task shared, alone, interference; then their mean."""
    tasks = []
    for shared, alone in seeds_results:
        for task in alone:
            if task not in tasks:
                tasks.append(task)
    alone_options = spec["options"]["alone"]
    lines = [f"### {setting}, {mode}", "",
             f"{len(seeds_results)} seed(s); shared: {setup_text(mode, run_options(spec, mode, steps))} on all tasks; "
             f"{ALONE[mode]}: {setup_text(mode, run_options(spec, mode, steps, max(1, len(tasks))))} on one task"
             + (f" with {' '.join(sweep.command_options(alone_options))}" if alone_options else ""), "",
             f"| task | shared ppl | {ALONE[mode]} ppl | interference (%) |", "|---|---|---|---|"]
    per_seed_mean = [[] for _ in seeds_results]
    for task in tasks:
        shared_ppl, alone_ppl, gaps = [], [], []
        for i, (shared, alone) in enumerate(seeds_results):
            if task not in alone or not math.isfinite(shared.get(task, math.nan)):
                continue
            s, a = shared[task], alone[task][task]
            shared_ppl.append(s)
            alone_ppl.append(a)
            gaps.append(100 * (s - a) / s)
            per_seed_mean[i].append(gaps[-1])
        lines.append(f"| {task} | {mean_std(shared_ppl)} | {mean_std(alone_ppl)} | {gain_text(gaps)} |")
    means = [statistics.mean(g) for g in per_seed_mean if g]
    lines.append(f"| mean over tasks | | | {gain_text(means)} |")
    return lines + [""]


def check_lengths(spec, steps):
    """Centralized runs need STEPS; federated ones the [federate] options a cluster is made from."""
    if "centralized" in spec["modes"] and steps < 1:
        raise sweep.SpecError(f"{spec['path']}: give [train] steps = N or --steps N (at least 1)")
    if "federated" in spec["modes"]:
        missing = [k for k in ("clients", "clients-per-round", "local-steps", "rounds") if k not in spec["options"]["federate"]]
        if missing:
            raise sweep.SpecError(f"{spec['path']}: federated runs need [federate] {', '.join(missing)} = N")


def write_markdown(path, lines):
    """Writes LINES to PATH atomically (a reader never sees half a table) and prints them."""
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    print("\n".join(lines))
    print(f"written: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("spec", help="sweep spec (INI) whose settings, modes, seeds and [common]/[prompt]/[prune]/[federate]/[alone] are used")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--mops", default=os.environ.get("MOPS", "build/mops"), help="the mops binary (default build/mops)")
    parser.add_argument("--steps", type=int, help="steps of the centralized shared run (default: the spec's [train] steps)")
    parser.add_argument("--report-only", action="store_true", help="run nothing; tables from the finished files")
    args = parser.parse_args()
    args.printed, args.dry_run = set(), False
    try:
        spec = sweep.read_spec(args.spec)
        steps = args.steps or int(spec["options"]["train"].get("steps", "0"))
        check_lengths(spec, steps)
        if not args.report_only and not os.access(args.mops, os.X_OK):
            raise sweep.SpecError(f"--mops {args.mops} is not an executable (build it: bash scripts/build.sh)")
        os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
        os.makedirs(os.path.join(args.out, "models"), exist_ok=True)
        # Per seed P0, then per mode the shared run and 7 of one task (known once a shared run ends).
        runner = Runner(args, len(spec["settings"]) * len(spec["seeds"]) * (1 + 8 * len(spec["modes"])))
        lines = [f"# Interference: {spec['description']}", "",
                 "interference = 100 x (shared - alone) / shared, test perplexity; positive: the task does "
                 "better alone (the other tasks get in its way). Mean ± sample std over seeds.", ""]
        for setting in spec["settings"]:
            model = os.path.join(args.out, "models", setting + ".safetensors")
            if not args.report_only:
                model = sweep.compressed_model(spec, args, setting, runner.env)
            results = {mode: [] for mode in spec["modes"]}
            for seed in spec["seeds"]:
                runs = run_seed(spec, args, runner, setting, model, seed, steps) if os.path.exists(model) else {}
                for mode, (shared, alone) in runs.items():
                    finished = {t: p for t, p in alone.items() if sweep.status_of(p) == "finished"}
                    # A seed counts once all its runs have finished (a partial seed would bias the mean).
                    if sweep.status_of(shared) == "finished" and finished and len(finished) == len(alone):
                        check_same_test_examples(shared, finished)
                        results[mode].append((last_eval(shared), {t: last_eval(p) for t, p in finished.items()}))
            for mode in spec["modes"]:
                lines += setting_table(spec, setting, mode, results[mode], steps)
    except (sweep.SpecError, RuntimeError) as error:
        print(f"interference: {error}", file=sys.stderr)
        return 1
    write_markdown(os.path.join(args.out, "interference.md"), lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
