#!/usr/bin/env python3
"""jobs/interference.py on jobs/tiny_interference.ini: every run once (P0, all tasks, each task
alone with steps / 7), the table's cells recomputed from the results files, a second run that
skips everything, and a spec that samples records (so a task alone would be tested on other
examples) refused with the reason.

    interference_test.py --mops build/mops --work DIR   (run from the repository root)
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

import h5py

SPEC = "jobs/tiny_interference.ini"


def interference(args, spec, out):
    run = subprocess.run([sys.executable, "jobs/interference.py", spec, "--out", out, "--mops", args.mops],
                         capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def require(condition, message, output=""):
    if not condition:
        print(f"FAIL: {message}\n{output}")
        sys.exit(1)


def last_ppl(path):
    with h5py.File(path, "r") as f:
        tasks = [t.decode() for t in f["tasks"][()]]
        return dict(zip(tasks, (float(p) for p in f["eval/ppl"][-1]))), int(f["train/step"][-1]), f.attrs["status"]


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
    shared, steps, status = last_ppl(base + "-shared.h5")
    require(status == "finished" and steps == 14, f"shared run: status {status}, {steps} steps (expected 14)")
    require(len(shared) == 7, f"the shared run has {len(shared)} tasks, expected skills7's 7")
    rows = dict(re.findall(r"^\| (\w+) \| [^|]* \| [^|]* \| ([^|]+) \|$", output, re.M))
    gaps = []
    for task, s in shared.items():
        alone, steps, status = last_ppl(f"{base}-alone-{task}.h5")
        require(status == "finished" and steps == 2, f"{task} alone: status {status}, {steps} steps (expected 14 // 7)")
        require(list(alone) == [task], f"{task} alone was trained on {list(alone)}")
        gap = 100 * (s - alone[task]) / s
        gaps.append(gap)
        require(task in rows and abs(float(rows[task]) - gap) < 0.051,
                f"{task}: the table says {rows.get(task)}, the files give {gap:+.2f}", output)
    mean = sum(gaps) / len(gaps)
    mean_row = re.search(r"^\| mean over tasks \| \| \| (\S+) \|$", output, re.M)
    require(mean_row and abs(float(mean_row[1]) - mean) < 0.051, f"the mean over tasks differs from {mean:+.2f}", output)
    require(os.path.exists(os.path.join(out, "interference.md")), "no interference.md")

    code, again = interference(args, SPEC, out)
    require(code == 0 and again.count("complete, skipped") == 9 and "running" not in again,
            "a second run must skip P0, the shared run and the 7 runs alone", again)

    # [alone] options reach the runs alone only, named after them; P0 and the shared run are reused.
    with open(SPEC) as f:
        capacity = f.read() + "\n[alone]\nexperts = 1\nprompts-per-expert = 3\n"
    spec = os.path.join(args.work, "capacity.ini")
    with open(spec, "w") as f:
        f.write(capacity)
    code, controlled = interference(args, spec, out)
    require(code == 0 and controlled.count("complete, skipped") == 2 and controlled.count(": running") == 7,
            "with [alone] only the 7 runs alone may run, P0 and the shared run reused", controlled)
    require("with --experts 1 --prompts-per-expert 3" in controlled, "the table must name the [alone] options", controlled)
    for task in shared:
        with h5py.File(f"{base}-alone-experts1-prompts-per-expert3-{task}.h5", "r") as f:
            require(f["state/mid_prompts"].shape[0] == 3, f"{task}: {f['state/mid_prompts'].shape[0]} mid prompts, expected 3")

    # Records sampled out of the source: a task alone keeps all of its records, so its test
    # examples differ from those it has among all tasks. The run must say so, not report.
    with open(SPEC) as f:
        sampled = f.read().replace("samples-per-source = 1000000", "samples-per-source = 150")
    spec = os.path.join(args.work, "sampled.ini")
    with open(spec, "w") as f:
        f.write(sampled)
    code, refused = interference(args, spec, os.path.join(args.work, "sampled"))
    require(code == 1 and "the test examples differ" in refused and "samples-per-source" in refused,
            "a sampled spec must be refused with the reason", refused)
    print("interference: 9 runs, table cells equal the files' values, second run skipped all, [alone] options "
          "reach only the runs alone, sampled spec refused")


if __name__ == "__main__":
    main()
