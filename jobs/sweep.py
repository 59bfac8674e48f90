#!/usr/bin/env python3
"""Runs a sweep: compression setting x mode x seed, each point with `mops` (federated ones under
mpirun), compressing the base model once per setting, skipping points whose results are complete.

    jobs/sweep.py SPEC --out DIR [--mops build/mops] [--setting NAME | --setting-index I]
                                         [--list] [--dry-run]

SPEC is an INI file (jobs/*.ini): a [sweep] section with the grid, and sections whose
`option = value` lines go to mops commands as --option value (an empty value gives a bare
flag): [common] to prune, train and federate; [prompt] to train and federate; [prune], [train]
and [federate] to that command alone ([alone] is read for jobs/interference.py, which adds it to its
runs of one task, and [variant NAME] sections for jobs/gate_settings.py; the sweep ignores both). Paths in the spec are relative to the directory the sweep is
started from (the repository root). Layout of DIR:

    models/<setting>.safetensors              the compressed model of each setting
    <mode>/<setting>/seed<S>.<method>.h5      results (mode: centralized | federated)
    logs/<mode>-<setting>-seed<S>.log         everything the point's commands printed
    index.json                                every point: setting, mode, seed, files, status

`methods = ...` in [sweep] lists what each point runs: one of both (the baseline, then MoPs, in one
command), mop, baseline, and any of the peer methods lora, ia3, prefix, mpt (a command each, with
the same options); a single paper method alone writes seed<S>.h5. A point is complete when each
of its results files says status "finished"; a killed sweep started again skips those, resumes
unfinished federated runs from their checkpoints (`mops federate --resume`) and reruns unfinished
centralized ones.
"""
import argparse
import configparser
import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import time

import h5py

SETTING = re.compile(r"^(?:sparsity(?P<sparsity>0?\.\d+|0|1)|nm(?P<nm>\d+:\d+))(?P<int8>\+int8)?$")
BASELINE = {"centralized": "prompt", "federated": "fedprompt"}
PAPER_METHODS = ("both", "mop", "baseline")          # one mops command with --method both | mop | prompt/fedprompt
PEER_METHODS = ("lora", "ia3", "prefix", "mpt")      # one mops command each


class SpecError(Exception):
    """A spec that cannot run; the message names the file, the key and what is allowed."""


def read_spec(path):
    """The [sweep] grid and the per-command options of SPEC."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # option names keep their case and dashes
    try:
        if not parser.read(path):
            raise SpecError(f"{path}: cannot read the sweep spec")
    except configparser.Error as error:
        raise SpecError(f"{path}: not an INI file: {error}")
    if "sweep" not in parser:
        raise SpecError(f"{path}: no [sweep] section")
    sweep = parser["sweep"]
    for key in ("base_model", "tokenizer", "data", "settings", "modes", "seeds"):
        if not sweep.get(key, "").strip():
            raise SpecError(f"{path}: [sweep] needs `{key} = ...`")
    spec = {
        "path": path,
        "description": sweep.get("description", ""),
        "base_model": sweep["base_model"], "tokenizer": sweep["tokenizer"], "data": sweep["data"],
        "settings": sweep["settings"].split(), "modes": sweep["modes"].split(),
        "methods": sweep.get("methods", "both"), "ranks": sweep.getint("ranks", 1),
        "options": {name: dict(parser[name]) if name in parser else {} for name in ("common", "prompt", "prune", "train", "federate", "alone")},
        # [variant NAME] sections, for jobs/gate_settings.py: NAME -> its options, in the spec's order
        "variants": {name.split(None, 1)[1]: dict(parser[name]) for name in parser.sections()
                     if name.startswith("variant ") and len(name.split(None, 1)) == 2},
    }
    for setting in spec["settings"]:
        if not SETTING.match(setting):
            raise SpecError(f"{path}: setting '{setting}' is not sparsityS or nmN:M with an optional +int8 "
                            "(e.g. sparsity0.75, nm2:4+int8)")
    spec["methods"] = spec["methods"].split()
    unknown = [m for m in spec["methods"] if m not in PAPER_METHODS and m not in PEER_METHODS]
    if unknown or not spec["methods"] or len(set(spec["methods"])) < len(spec["methods"]):
        raise SpecError(f"{path}: methods = '{sweep.get('methods')}' is not a list of distinct methods among "
                        f"{', '.join(PAPER_METHODS + PEER_METHODS)}")
    if sum(m in PAPER_METHODS for m in spec["methods"]) > 1:
        raise SpecError(f"{path}: methods = '{sweep.get('methods')}' names more than one of {', '.join(PAPER_METHODS)} "
                        "(both is the baseline and mop)")
    for mode in spec["modes"]:
        if mode not in BASELINE:
            raise SpecError(f"{path}: mode '{mode}' is not one of centralized, federated")
    try:
        spec["seeds"] = [int(s) for s in sweep["seeds"].split()]
    except ValueError:
        raise SpecError(f"{path}: seeds = '{sweep['seeds']}' must be integers")
    return spec


def command_options(options):
    """{"steps": "100", "int8": ""} -> ["--steps", "100", "--int8"]"""
    args = []
    for name, value in options.items():
        args.append("--" + name)
        args.extend(shlex.split(value))
    return args


def runs_of(spec, out_dir, mode, setting, seed):
    """The mops commands of one point, one per entry of `methods`: each its --method, the OUT.h5
    given to mops and the files it writes (both: OUT.<baseline>.h5 and OUT.mop.h5; a peer method
    P: seed<S>.P.h5)."""
    base = os.path.join(out_dir, mode, setting, f"seed{seed}.h5")
    runs = []
    for method in spec["methods"]:
        if method == "both":
            runs.append({"method": "both", "out": base, "files": [base[:-3] + f".{m}.h5" for m in (BASELINE[mode], "mop")]})
        elif method in PAPER_METHODS and len(spec["methods"]) == 1:  # alone: OUT.h5 itself
            name = BASELINE[mode] if method == "baseline" else method
            runs.append({"method": name, "out": base, "files": [base]})
        else:
            name = BASELINE[mode] if method == "baseline" else method
            out = base[:-3] + f".{name}.h5"
            runs.append({"method": name, "out": out, "files": [out]})
    return runs


def prune_command(spec, mops, setting, out):
    match = SETTING.match(setting)
    pattern = ["--sparsity", match["sparsity"]] if match["sparsity"] else ["--nm", match["nm"]]
    return ([mops, "prune", "--model", spec["base_model"], "--tokenizer", spec["tokenizer"], "--data", spec["data"],
             "--out", out] + pattern + (["--int8"] if match["int8"] else []) + command_options(spec["options"]["common"])
            + command_options(spec["options"]["prune"]))


def mpirun_prefix(ranks):
    """mpirun with the settings Open MPI needs here (root, more ranks than cores) and no binding:
    Open MPI binds each of 1 or 2 ranks to one core, so a single rank's threads would share one
    core, and points of parallel sweeps would all run on core 0 (measured: half the machine idle)."""
    ranks = int(os.environ.get("MOPS_RANKS", ranks))
    return ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(ranks)]


def point_command(spec, mops, mode, model, seed, run, resume):
    """The command of one RUN of a point (runs_of); RESUME: its files exist (unfinished), so
    federated runs go on from their checkpoints and centralized ones start again over them
    (--overwrite)."""
    common = (["--model", model, "--tokenizer", spec["tokenizer"], "--data", spec["data"], "--seed", str(seed),
               "--method", run["method"], "--out", run["out"]] + command_options(spec["options"]["common"])
              + command_options(spec["options"]["prompt"]))
    if mode == "centralized":
        return [mops, "train"] + common + command_options(spec["options"]["train"]) + (["--overwrite"] if resume else [])
    return (mpirun_prefix(spec["ranks"]) + [mops, "federate"] + common + command_options(spec["options"]["federate"])
            + (["--resume"] if resume else []))


def status_of(path):
    """'finished', 'running' (or another status the file holds), or 'missing'."""
    if not os.path.exists(path):
        return "missing"
    try:
        with h5py.File(path, "r") as f:
            status = f.attrs.get("status", "missing")
            return status.decode() if isinstance(status, bytes) else str(status)
    except OSError:
        return "unreadable"


def write_index(out_dir, spec, points):
    """Merges POINTS into DIR/index.json (points of other settings stay), under a lock so that
    the tasks of a job array can write it at the same time; replaced atomically."""
    key = lambda p: (p["setting"], p["mode"], p["seed"])
    with open(os.path.join(out_dir, "index.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(out_dir, "index.json")
        merged = {}
        if os.path.exists(path):
            with open(path) as f:
                merged = {key(p): p for p in json.load(f)["points"]}
        merged.update({key(p): p for p in points})
        order = {(s, m, seed): i for i, (s, m, seed) in enumerate(grid(spec, spec["settings"]))}
        index = {"spec": os.path.abspath(spec["path"]), "description": spec["description"],
                 "points": sorted(merged.values(), key=lambda p: order.get(key(p), len(order)))}
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(index, f, indent=1)
        os.replace(tmp, path)


def run_logged(command, log_path, env):
    """Runs COMMAND with its output appended to LOG_PATH; returns the exit code."""
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(shlex.quote(c) for c in command) + "\n")
        log.flush()
        return subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def duration(seconds):
    """'42 s', '7 min', '2.3 h'"""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def tail(path, lines=15):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def compressed_model(spec, args, setting, env):
    """DIR/models/<setting>.safetensors, made once (mops prune writes it atomically)."""
    path = os.path.join(args.out, "models", setting + ".safetensors")
    if os.path.exists(path) or path in args.printed:
        return path
    command = prune_command(spec, args.mops, setting, path)
    if args.dry_run:
        print(" ".join(shlex.quote(c) for c in command))
        args.printed.add(path)
        return path
    log = os.path.join(args.out, "logs", f"prune-{setting}.log")
    print(f"compressing: {setting} (log {log})", flush=True)
    if run_logged(command, log, env) != 0:
        raise RuntimeError(f"mops prune failed for {setting}; last lines of {log}:\n{tail(log)}")
    return path


def grid(spec, settings):
    return [(setting, mode, seed) for setting in settings for mode in spec["modes"] for seed in spec["seeds"]]


def run_point(spec, args, env, point, runs, label):
    """Runs each of the point's RUNS whose files are not all finished; returns 'skipped' (all were),
    'finished' or 'failed' (the first run that failed, whose log tail is printed)."""
    if all(status_of(f) == "finished" for run in runs for f in run["files"]):
        print(f"{label}: complete, skipped", flush=True)
        return "skipped"
    model = compressed_model(spec, args, point["setting"], env)
    for run in runs:
        statuses = [status_of(f) for f in run["files"]]
        if all(s == "finished" for s in statuses):
            continue
        resume = any(s != "missing" for s in statuses)
        command = point_command(spec, args.mops, point["mode"], model, point["seed"], run, resume)
        if args.dry_run:
            print(" ".join(shlex.quote(c) for c in command))
            continue
        os.makedirs(os.path.dirname(run["out"]), exist_ok=True)
        action = "running" if not resume else "resuming" if point["mode"] == "federated" else "running again"
        print(f"{label} {run['method']}: {action} (log {point['log']})", flush=True)
        start = time.time()
        code = run_logged(command, point["log"], env)
        if code != 0:
            print(f"{label} {run['method']}: FAILED (exit {code}); last lines of {point['log']}:\n{tail(point['log'])}",
                  flush=True)
            return "failed"
        print(f"{label} {run['method']}: finished in {time.time() - start:.0f} s", flush=True)
    return "finished"


def run_sweep(spec, args, settings):
    """Every point of SETTINGS; returns the number that failed."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    for sub in ("models", "logs"):
        os.makedirs(os.path.join(args.out, sub), exist_ok=True)
    points, failed, started = [], 0, time.time()
    todo = grid(spec, settings)
    ran = 0
    for number, (setting, mode, seed) in enumerate(todo, 1):
        runs = runs_of(spec, args.out, mode, setting, seed)
        point = {"setting": setting, "mode": mode, "seed": seed, "results": [f for run in runs for f in run["files"]],
                 "log": os.path.join(args.out, "logs", f"{mode}-{setting}-seed{seed}.log")}
        label = f"[{number}/{len(todo)}] {mode} {setting} seed {seed}"
        status = run_point(spec, args, env, point, runs, label)
        if status == "skipped":
            points.append(dict(point, status="finished"))
            continue
        if args.dry_run:
            continue
        ran += 1
        remaining = (time.time() - started) / ran * (len(todo) - number)
        failed += status == "failed"
        if status == "finished":
            print(f"{label}: finished; about {duration(remaining)} left for the rest", flush=True)
        points.append(dict(point, status=status))
        write_index(args.out, spec, points)
    if not args.dry_run:
        write_index(args.out, spec, points)
    return failed


def chosen_settings(spec, args):
    if args.setting is not None:
        if args.setting not in spec["settings"]:
            raise SpecError(f"--setting {args.setting} is not in {spec['path']}: {' '.join(spec['settings'])}")
        return [args.setting]
    if args.setting_index is not None:
        if not 0 <= args.setting_index < len(spec["settings"]):
            raise SpecError(f"--setting-index {args.setting_index} is outside [0, {len(spec['settings']) - 1}]")
        return [spec["settings"][args.setting_index]]
    return spec["settings"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("spec", help="sweep spec (INI), e.g. jobs/centralized_unstructured.ini")
    parser.add_argument("--out", help="output directory (required unless --list)")
    parser.add_argument("--mops", default=os.environ.get("MOPS", "build/mops"), help="the mops binary (default build/mops)")
    parser.add_argument("--setting", help="run only this compression setting")
    parser.add_argument("--setting-index", type=int, help="run only setting I (0-based; for job arrays)")
    parser.add_argument("--list", action="store_true", help="print the settings, one per line, and exit")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    args = parser.parse_args()
    args.printed = set()  # --dry-run: compressions already printed
    try:
        spec = read_spec(args.spec)
        if args.list:
            print("\n".join(spec["settings"]))
            return 0
        if not args.out:
            raise SpecError("--out DIR is required")
        if not args.dry_run and not os.access(args.mops, os.X_OK):
            raise SpecError(f"--mops {args.mops} is not an executable (build it: bash scripts/build.sh)")
        failed = run_sweep(spec, args, chosen_settings(spec, args))
    except (SpecError, RuntimeError) as error:
        print(f"sweep: {error}", file=sys.stderr)
        return 1
    if failed:
        print(f"sweep: {failed} point(s) failed; run the same command again to retry them", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
