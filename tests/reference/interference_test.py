#!/usr/bin/env python3
"""jobs/interference.py on jobs/tiny_interference.ini, both modes: every run once (P0, then
centralized all tasks and each task alone with steps / 7, federated FedPrompt on all tasks and on
each task's cluster of clients / 7 clients with local-steps / 7), the table's cells recomputed from
the results files, a second run that skips everything, an unfinished federated run resumed from its
checkpoint, [alone] options, and specs that sample records (so a task alone would be tested on other
examples) refused with the reason in either mode.

    interference_test.py --mops build/mops --work DIR   (run from the repository root)
"""
import argparse
import json
import os
import re
import shutil

import h5py
import numpy

from job_support import require, run_job

SPEC = "jobs/tiny_interference.ini"
TASK_RUN = {"centralized": "alone", "federated": "federated-cluster"}  # file name of a run of one task
SHARED = {"centralized": "shared", "federated": "federated-shared"}


def interference(args, spec, out):
    return run_job("interference.py", spec, out, args.mops)


def read_run(path):
    """{task: last test ppl}, the length run (steps or rounds), status, options, P0 and partition shape."""
    with h5py.File(path, "r") as f:
        tasks = [t.decode() for t in f["tasks"][()]]
        length = f["fed/round"][-1] if "fed" in f else f["train/step"][-1]
        return {"ppl": dict(zip(tasks, (float(p) for p in f["eval/ppl"][-1]))), "length": int(length),
                "status": f.attrs["status"], "options": json.loads(f.attrs["config"])["options"],
                "p0": f["state/first_prompts"][()], "partition": f["fed/partition"].shape if "fed" in f else None}


def table_rows(output, mode):
    """{task: interference cell} and the mean cell of MODE's table in OUTPUT."""
    section = output.split(f"### sparsity0.75, {mode}\n")[1].split("###")[0]
    rows = dict(re.findall(r"^\| (\w+) \| [^|]* \| [^|]* \| ([^|]+) \|$", section, re.M))
    mean = re.search(r"^\| mean over tasks \| \| \| (\S+) \|$", section, re.M)
    return rows, mean and float(mean[1])


def check_mode(mode, output, base, expected):
    """MODE's files: the shared run, 7 runs of one task with the expected length and options, one
    P0; the table's cells recomputed from them. Returns the shared run's tasks."""
    shared = read_run(f"{base}-{SHARED[mode]}.h5")
    require(shared["status"] == "finished" and shared["length"] == expected["shared"],
            f"{mode} shared run: status {shared['status']}, length {shared['length']}, expected {expected['shared']}")
    require(len(shared["ppl"]) == 7, f"the {mode} shared run has {len(shared['ppl'])} tasks, expected skills7's 7")
    rows, mean = table_rows(output, mode)
    gaps = []
    for task, s in shared["ppl"].items():
        alone = read_run(f"{base}-{TASK_RUN[mode]}-{task}.h5")
        require(alone["status"] == "finished" and alone["length"] == expected["alone"],
                f"{mode} {task}: status {alone['status']}, length {alone['length']} (expected {expected['alone']})")
        require(list(alone["ppl"]) == [task], f"{mode} {task} was trained on {list(alone['ppl'])}")
        for name, value in expected.get("options", {}).items():
            require(alone["options"][name] == value, f"{mode} {task}: --{name} {alone['options'][name]}, expected {value}")
        require(alone["partition"] == expected.get("partition"), f"{mode} {task}: partition {alone['partition']}")
        require(numpy.array_equal(alone["p0"], shared["p0"]), f"{mode} {task}: another P0 than the shared run's")
        gap = 100 * (s - alone["ppl"][task]) / s
        gaps.append(gap)
        require(task in rows and abs(float(rows[task]) - gap) < 0.051,
                f"{mode} {task}: the table says {rows.get(task)}, the files give {gap:+.2f}", output)
    require(mean is not None and abs(mean - sum(gaps) / len(gaps)) < 0.051,
            f"{mode}: the mean over tasks differs from {sum(gaps) / len(gaps):+.2f}", output)
    return shared


def sampled_spec(args, modes):
    """The tiny spec with records sampled out of the source, run in MODES."""
    with open(SPEC) as f:
        sampled = f.read().replace("samples-per-source = 1000000", "samples-per-source = 150")
    spec = os.path.join(args.work, f"sampled-{modes.replace(' ', '-')}.ini")
    with open(spec, "w") as f:
        f.write(re.sub(r"^modes = .*$", f"modes = {modes}", sampled, flags=re.M))
    return spec


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mops", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    out = os.path.join(args.work, "runs")
    code, output = interference(args, SPEC, out)
    require(code == 0, "the tiny interference run failed", output)
    base = os.path.join(out, "sparsity0.75", "seed1")
    centralized = check_mode("centralized", output, base, {"shared": 14, "alone": 2})
    # 14 clients, 2 per round, 7 local steps; a cluster: 14 // 7 clients, 7 // 7 local steps.
    federated = check_mode("federated", output, base, {"shared": 2, "alone": 2, "partition": (2, 1),
                                                         "options": {"clients": "2", "local-steps": "1",
                                                                     "clients-per-round": "2"}})
    require(read_run(f"{base}-federated-shared.h5")["partition"] == (14, 7), "the federated shared run: not 14 clients")
    require(numpy.array_equal(centralized["p0"], federated["p0"]), "the modes of a seed must share its P0")
    require(centralized["p0"].shape[0] == 4, f"P0 has {centralized['p0'].shape[0]} prompts, not [prompt]'s p0-prompts 4")
    require(os.path.exists(os.path.join(out, "interference.md")), "no interference.md")

    code, again = interference(args, SPEC, out)
    require(code == 0 and again.count("complete, skipped") == 17 and "running" not in again,
            "a second run must skip P0 and both modes' shared runs and 7 runs of one task", again)

    # An unfinished federated run goes on from its checkpoint (--resume), the others are skipped.
    unfinished = f"{base}-federated-cluster-sort_numbers.h5"
    with h5py.File(unfinished, "a") as f:
        f.attrs["status"] = "running"
    code, resumed = interference(args, SPEC, out)
    log = os.path.join(out, "logs", "sparsity0.75-seed1.log")
    with open(log) as f:
        last_command = [line for line in f if line.startswith("$ ")][-1]
    require(code == 0 and resumed.count(": running") == 1 and "--resume" in last_command
            and unfinished in last_command and read_run(unfinished)["status"] == "finished",
            "an unfinished federated run must be resumed (--resume), and only it", resumed + last_command)

    # [alone] options reach the runs of one task only, named after them; P0 and the shared runs are reused.
    with open(SPEC) as f:
        capacity = f.read() + "\n[alone]\nexperts = 1\nprompts-per-expert = 3\n"
    spec = os.path.join(args.work, "capacity.ini")
    with open(spec, "w") as f:
        f.write(capacity)
    code, controlled = interference(args, spec, out)
    require(code == 0 and controlled.count("complete, skipped") == 3 and controlled.count(": running") == 14,
            "with [alone] only the 14 runs of one task may run, P0 and the shared runs reused", controlled)
    require(controlled.count("with --experts 1 --prompts-per-expert 3") == 2,
            "both tables must name the [alone] options", controlled)
    for mode in TASK_RUN:
        for task in centralized["ppl"]:
            path = f"{base}-{TASK_RUN[mode]}-experts1-prompts-per-expert3-{task}.h5"
            with h5py.File(path, "r") as f:
                require(f["state/mid_prompts"].shape[0] == 3, f"{path}: {f['state/mid_prompts'].shape[0]} mid prompts")

    # [alone] method = mop: a task alone trained by MoPs (here with top-1 routing), the baseline shared.
    with open(SPEC) as f:
        routed = f.read().replace("modes = centralized federated", "modes = centralized")
    spec = os.path.join(args.work, "routed.ini")
    with open(spec, "w") as f:
        f.write(routed + "\n[alone]\nmethod = mop\ngate-top-k = 1\n")
    code, output = interference(args, spec, out)
    require(code == 0 and output.count(": running") == 7, "[alone] method = mop must run the 7 tasks alone", output)
    for task in centralized["ppl"]:
        with h5py.File(f"{base}-alone-methodmop-gate-top-k1-{task}.h5", "r") as f:
            require(f.attrs["method"] == "mop" and json.loads(f.attrs["prompt_config"])["gate_top_k"] == 1,
                    f"{task} alone did not run MoPs with top-1 routing")

    # Records sampled out of the source: a task alone keeps all of its records, so its test
    # examples differ from those it has among all tasks. Either mode must say so, not report.
    for modes, run_of_one_task in (("centralized", "-alone-"), ("federated", "-federated-cluster-")):
        code, refused = interference(args, sampled_spec(args, modes), os.path.join(args.work, "sampled"))
        require(code == 1 and "the test examples differ" in refused and "samples-per-source" in refused
                and run_of_one_task in refused, f"a sampled spec must be refused with the reason ({modes})", refused)
    print("interference: 17 runs in both modes, table cells equal the files' values, one P0, clusters of "
          "clients / 7 with local-steps / 7, second run skipped all, unfinished federated run resumed, "
          "[alone] options reach only the runs of one task, sampled specs refused in both modes")


if __name__ == "__main__":
    main()
