#!/usr/bin/env python3
"""jobs/sweep.py on jobs/tiny.ini: the grid expands to the expected commands, a sweep runs every
point once, a second run skips them all, and after a "kill" (a result removed, another marked
running) it reruns the centralized point and resumes the federated one; with `methods = both lora
mpt` it adds the peer methods' runs next to the finished ones, and refuses impossible lists.

    sweep_test.py --mops build/mops --work DIR   (run from the repository root)
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import h5py

from job_support import require, run_job

SPEC = "jobs/tiny.ini"


def sweep(args, *extra, spec=SPEC):
    return run_job("sweep.py", spec, args.work, args.mops, *extra)


def with_methods(args, methods, settings="nm2:4"):
    """A copy of the tiny spec in the work directory with other methods and settings."""
    path = os.path.join(args.work, f"methods-{len(os.listdir(args.work))}.ini")
    text = open(SPEC).read().replace("settings = sparsity0.75 nm2:4", f"settings = {settings}")
    with open(path, "w") as f:
        f.write(text.replace("ranks = 2", f"ranks = 2\nmethods = {methods}"))
    return path


def peer_methods(args):
    """`methods = both lora mpt` on a swept setting: only the two new runs per point run."""
    spec = with_methods(args, "both lora mpt")
    code, out = sweep(args, "--dry-run", spec=spec)
    lines = [l for l in out.splitlines() if l.strip()]
    require(code == 0 and len(lines) == 4 and all("--method both" not in l for l in lines),
            "dry run: lora and mpt for both modes, both done already", out)
    code, out = sweep(args, spec=spec)
    require(code == 0 and out.count("lora: running") == 2 and out.count("mpt: running") == 2, "the peer runs", out)
    index = json.load(open(os.path.join(args.work, "index.json")))
    for point in (p for p in index["points"] if p["setting"] == "nm2:4"):
        names = sorted(os.path.basename(f) for f in point["results"])
        baseline = "prompt" if point["mode"] == "centralized" else "fedprompt"
        require(names == sorted(f"seed1.{m}.h5" for m in (baseline, "mop", "lora", "mpt")), f"index {names}", out)
        require(all(status(f) == "finished" for f in point["results"]), "every file finished", out)
    for bad in ("both mop", "lora lora", "dora"):
        code, out = sweep(args, "--dry-run", spec=with_methods(args, bad))
        require(code == 1 and "methods = " in out, f"methods = {bad} is refused", out)
    print("methods = both lora mpt: 4 peer runs next to the finished ones; impossible lists refused")


def status(path):
    with h5py.File(path, "r") as f:
        return f.attrs["status"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mops", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)

    code, out = sweep(args, "--dry-run")
    lines = [l for l in out.splitlines() if l.strip()]
    require(code == 0 and len(lines) == 6, "dry run: 2 compressions + 2 settings x 2 modes x 1 seed", out)
    require(sum(" prune " in l for l in lines) == 2 and sum("mpirun" in l for l in lines) == 2, "dry run commands", out)
    require(all("--bind-to none" in l for l in lines if "mpirun" in l), "mpirun without --bind-to none", out)

    code, out = sweep(args)
    require(code == 0, "the sweep runs", out)
    index = json.load(open(os.path.join(args.work, "index.json")))
    files = [f for p in index["points"] for f in p["results"]]
    require(len(index["points"]) == 4 and all(p["status"] == "finished" for p in index["points"]), "index", out)
    require(len(files) == 8 and all(status(f) == "finished" for f in files), "8 finished results files", out)
    print("sweep ran 4 points, 8 results files")

    before = {f: os.path.getmtime(f) for f in files}
    code, out = sweep(args)
    require(code == 0 and out.count("complete, skipped") == 4, "a second run skips every point", out)
    require(all(os.path.getmtime(f) == t for f, t in before.items()), "skipped points are untouched", out)

    centralized = os.path.join(args.work, "centralized", "nm2:4", "seed1.mop.h5")
    federated = os.path.join(args.work, "federated", "sparsity0.75", "seed1.mop.h5")
    os.remove(centralized)
    with h5py.File(federated, "r+") as f:
        f.attrs["status"] = "running"
    code, out = sweep(args)
    require(code == 0, "the interrupted sweep completes", out)
    require(out.count("complete, skipped") == 2, "two points untouched", out)
    require("federated sparsity0.75 seed 1 both: resuming" in out, "the federated point resumes", out)
    require("centralized nm2:4 seed 1 both: running" in out, "the centralized point reruns", out)
    require(status(centralized) == "finished" and status(federated) == "finished", "both finished again", out)
    require(not os.path.exists(os.path.join(args.work, "models", "sparsity0.75.safetensors.tmp")), "no leftovers")
    print("resumed: centralized rerun, federated resumed, the rest skipped")
    peer_methods(args)

    code, out = subprocess.run([sys.executable, "jobs/sweep.py", SPEC, "--setting", "nm3:4", "--out", args.work],
                               capture_output=True, text=True).returncode, ""
    require(code == 1, "an unknown --setting is an error")


if __name__ == "__main__":
    main()
