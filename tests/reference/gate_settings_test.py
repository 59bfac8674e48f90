#!/usr/bin/env python3
"""jobs/gate_settings.py on jobs/tiny_gate_settings.ini: the validation runs (baseline and each
variant, 2 seeds) on the validation split, the choice recomputed from their files, the test runs
of the baseline, the chosen variant and `paper` on the test split, the tables' cells recomputed
from the files, a second run that skips everything, and a spec without [variant paper] refused.

    gate_settings_test.py --mops build/mops --work DIR   (run from the repository root)
"""
import argparse
import json
import os
import re
import shutil
import statistics

import h5py
import numpy as np

from job_support import require, run_job

SPEC = "jobs/tiny_gate_settings.ini"
SEEDS = (1, 2)
VARIANTS = ("paper", "top-1-noisy")


def gate_settings(args, spec, out):
    return run_job("gate_settings.py", spec, out, args.mops)


def attribute(f, name):
    value = f.attrs[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def read_run(path, split):
    """(overall perplexity, P0-only overall perplexity) of a finished run on `split`."""
    with h5py.File(path, "r") as f:
        require(attribute(f, "status") == "finished", f"{path}: not finished")
        require(attribute(f, "held_out_split") == split, f"{path}: held_out_split {attribute(f, 'held_out_split')}")
        p0 = json.loads(attribute(f, "references"))["p0_only"]["overall"]
        return float(f["eval/ppl_all"][-1]), p0


def cell(values):
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def gain_cell(baseline, mop):
    gains = [100 * (b - m) / b for b, m in zip(baseline, mop)]
    return f"{statistics.mean(gains):+.1f} ± {statistics.stdev(gains):.1f}"


def check_table(output, title, runs):
    """The rows of the table headed `title` against the files' values."""
    table = output.split(f"#### {title}", 1)
    require(len(table) == 2, f"no table '{title}'", output)
    rows = {m[0].replace("**", "").replace(" (chosen)", ""): (m[1], m[2])
            for m in re.findall(r"^\| ([^|]+?) \| `[^`]*` \| ([^|]+?) \| ([^|]*?) \| \d+/\d+ \|$",
                                table[1].split("####")[0], re.M)}
    baseline = [v for v, _ in runs["baseline"]]
    for variant, values in runs.items():
        ppl = [v for v, _ in values]
        require(variant in rows and rows[variant][0] == cell(ppl),
                f"{title}, {variant}: table {rows.get(variant)}, files {cell(ppl)}", output)
        if variant != "baseline":
            require(rows[variant][1] == gain_cell(baseline, ppl),
                    f"{title}, {variant}: gain {rows[variant][1]}, files {gain_cell(baseline, ppl)}", output)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mops", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    out = os.path.join(args.work, "runs")
    code, output = gate_settings(args, SPEC, out)
    require(code == 0, "the tiny gate-settings run failed", output)
    path = lambda split, variant, seed: os.path.join(out, "sparsity0.75", split, f"{variant}-seed{seed}.h5")
    validation = {v: [read_run(path("validation", v, s), "validation") for s in SEEDS] for v in ("baseline",) + VARIANTS}
    means = {v: statistics.mean(p for p, _ in validation[v]) for v in VARIANTS}
    chosen = min(means, key=means.get)
    require(f"| **{chosen}** (chosen) |" in output, f"the lowest mean validation perplexity is {chosen}'s", output)
    check_table(output, "Validation", validation)
    tested = ("baseline",) + tuple(sorted({"paper", chosen}, key=VARIANTS.index))
    test = {v: [read_run(path("test", v, s), "test") for s in SEEDS] for v in tested}
    check_table(output, "Test", test)
    others = set(VARIANTS) - set(tested)
    require(all(not os.path.exists(path("test", v, s)) for v in others for s in SEEDS),
            f"only the baseline, paper and the chosen variant run on test, not {others}")
    # Validation is other records than test: P0 alone is evaluated on different examples.
    require(validation["baseline"][0][1] != test["baseline"][0][1], "the validation and test P0-only perplexities agree")
    # The variants' options reached their runs.
    with h5py.File(path("validation", "top-1-noisy", 1), "r") as f:
        config = json.loads(attribute(f, "prompt_config"))
        require(config["gate_top_k"] == 1, f"top-1-noisy ran with gate_top_k {config['gate_top_k']}")
        used, entropy = f["gate/experts_used"][-1], f["gate/entropy"][-1]
        used, entropy = used[np.isfinite(used)], entropy[np.isfinite(entropy)]  # NaN: a task without examples
        require((used == 1).all() and (entropy == 0).all(),
                f"a top-1 gate puts each example on one expert: experts used {used}, entropy {entropy}")
    runs = sum(len(v) for v in validation.values()) + sum(len(v) for v in test.values())

    code, again = gate_settings(args, SPEC, out)
    require(code == 0 and again.count("complete, skipped") == runs and "running" not in again,
            f"a second run must skip all {runs} runs", again)

    with open(SPEC) as f:
        no_paper = f.read().replace("[variant paper]", "[variant scaled]")
    spec = os.path.join(args.work, "no_paper.ini")
    with open(spec, "w") as f:
        f.write(no_paper)
    code, refused = gate_settings(args, spec, os.path.join(args.work, "no_paper"))
    require(code == 1 and "[variant paper]" in refused, "a spec without the paper's gate must be refused", refused)
    print(f"gate_settings: {runs} runs on their splits, chosen {chosen} by validation, table cells equal the files, "
          "second run skipped all, spec without [variant paper] refused")


if __name__ == "__main__":
    main()
