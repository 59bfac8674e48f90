#!/usr/bin/env python3
"""Checks what a sweep left in OUTDIR against its spec (jobs/sweep.py's layout):
every (setting, mode, seed, method) point has OUTDIR/<mode>/<setting>/seed<S>.<method>.h5 with
status "finished", the mode, method and seed of its point, and the mops-results/1 schema
(tests/reference/check_results_file.py); OUTDIR/index.json and each point's log exist.

usage: check_sweep_output.py SPEC OUTDIR
Prints one line per results file; exits 1 with what is wrong otherwise.
"""
import configparser
import os
import subprocess
import sys

import h5py

METHODS = {"centralized": {"both": ["prompt", "mop"], "mop": ["mop"], "baseline": ["prompt"]},
           "federated": {"both": ["fedprompt", "mop"], "mop": ["mop"], "baseline": ["fedprompt"]}}
SCHEMA_CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference", "check_results_file.py")


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def main(spec_path, out_dir):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(spec_path)
    sweep = parser["sweep"]
    problems, checked = [], 0
    for setting in sweep["settings"].split():
        for mode in sweep["modes"].split():
            for seed in sweep["seeds"].split():
                log = os.path.join(out_dir, "logs", f"{mode}-{setting}-seed{seed}.log")
                if not os.path.isfile(log):
                    problems.append(f"missing point log {log}")
                for method in METHODS[mode][sweep.get("methods", "both")]:
                    path = os.path.join(out_dir, mode, setting, f"seed{seed}.{method}.h5")
                    if not os.path.isfile(path):
                        problems.append(f"missing results file {path}")
                        continue
                    with h5py.File(path, "r") as f:
                        got = {k: text(f.attrs.get(k, "?")) for k in ("status", "mode", "method", "seed")}
                    want = {"status": "finished", "mode": mode, "method": method, "seed": seed}
                    if got != want:
                        problems.append(f"{path}: attributes {got}, expected {want}")
                    schema = subprocess.run([sys.executable, SCHEMA_CHECK, path], capture_output=True, text=True)
                    if schema.returncode != 0:
                        problems.append(f"{path}: schema check failed: {schema.stderr.strip()}")
                    else:
                        print(f"{path}: {schema.stdout.strip()}")
                    checked += 1
    if not os.path.isfile(os.path.join(out_dir, "index.json")):
        problems.append(f"missing {os.path.join(out_dir, 'index.json')}")
    if problems:
        print("\n".join(f"check_sweep_output: {p}" for p in problems), file=sys.stderr)
        return 1
    print(f"check_sweep_output: {checked} results files finished and valid")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
