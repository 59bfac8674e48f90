#!/usr/bin/env python3
"""Checks jobs/report.py on results files written by `mops train` and `mops federate`.

usage: check_report.py tables REPORT_PY WORK_DIR
         WORK_DIR/results holds train-s1/-s2 (centralized, seeds 1 and 2) and federate (seed 3)
         .prompt/.fedprompt/.mop.h5 files (and train-s1/-s2.lora.h5). Runs the report on them and checks report.md against
         values recomputed here from the files, and that every figure is a non-empty PNG; then on
         modified copies: compression settings read from the attribute and from the model file's
         name, and a federated MoPs run that is still running.
       check_report.py rejects REPORT_PY WORK_DIR
         The report on a file that is not HDF5, on an HDF5 file of another schema and on one of
         an unknown method: exit 1 and one line naming the file, no traceback.
Prints what it checked; exits 1 with the reason on the first failure.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np


def require(condition, message):
    if not condition:
        print(f"check_report.py: FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def run_report(report_py, inputs, out):
    """Runs the report; returns (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, str(report_py), *map(str, inputs), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def section(markdown, heading):
    """The text of report.md from HEADING up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = markdown.index(heading + "\n")
    rest = markdown[start + len(heading) + 1:]
    ends = [i for i in (rest.find("\n## "), rest.find("\n" + level + " ")) if i >= 0]
    return rest[:min(ends)] if ends else rest


def row(text, first_cell):
    """The cells of the Markdown table row whose first cell is FIRST_CELL."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    require(False, f"no table row '{first_cell}' in:\n{text}")


def last_overall(path):
    """(per-task perplexities at the last evaluation, overall), read here with h5py."""
    with h5py.File(path, "r") as f:
        return f["eval/ppl"][-1], float(f["eval/ppl_all"][-1]), [t.decode() for t in f["tasks"][()]]


def check_png(path):
    """A PNG file of reasonable size."""
    require(path.is_file(), f"missing figure {path.name}")
    data = path.read_bytes()
    require(data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    require(width >= 400 and height >= 300, f"{path.name} is only {width} x {height} pixels")


def check_centralized(markdown, results):
    """Dense centralized: two seeds, mean +- sample std and paired gains as computed here, against
    the baseline and against LoRA."""
    summary = section(markdown, "## Centralized")
    require("| Setting | Baseline | MoPs | Gain (%) | LoRA | MoPs vs LoRA (%) | Seeds" in summary, "no LoRA columns")
    cells = row(summary, "dense")
    base = [last_overall(results / f"train-s{s}.prompt.h5") for s in (1, 2)]
    mop = [last_overall(results / f"train-s{s}.mop.h5") for s in (1, 2)]
    lora = [last_overall(results / f"train-s{s}.lora.h5") for s in (1, 2)]
    b, m, l = (np.array([x[1] for x in runs]) for runs in (base, mop, lora))
    gain, against_lora = 100 * (b - m) / b, 100 * (l - m) / l
    require(cells[1] == f"{b.mean():.3f} ± {b.std(ddof=1):.3f}", f"baseline cell {cells[1]!r}, values {b}")
    require(cells[2] == f"{m.mean():.3f} ± {m.std(ddof=1):.3f}", f"MoPs cell {cells[2]!r}, values {m}")
    require(cells[3] == f"{gain.mean():+.1f} ± {gain.std(ddof=1):.1f}", f"gain cell {cells[3]!r}, gains {gain}")
    require(cells[4] == f"{l.mean():.3f} ± {l.std(ddof=1):.3f}", f"LoRA cell {cells[4]!r}, values {l}")
    require(cells[5] == f"{against_lora.mean():+.1f} ± {against_lora.std(ddof=1):.1f}",
            f"MoPs vs LoRA cell {cells[5]!r}, gains {against_lora}")
    require(cells[6:] == ["2 / 2 / 2", "finished"], f"seeds and status cells {cells[6:]}")
    detail = section(markdown, "### dense")
    tasks = base[0][2]
    for t, task in enumerate(tasks):
        values = np.array([x[0][t] for x in base])
        task_cells = row(detail, task)
        if (values > 0).all():
            require(task_cells[1] == f"{values.mean():.3f} ± {values.std(ddof=1):.3f}", f"row {task_cells}")
        else:  # a task without test examples has perplexity NaN (0 in older files): one seed left
            require(task_cells[1] == f"{np.nanmax(values):.3f} (n=1)", f"row {task_cells}, values {values}")
    require(row(detail, "**overall**")[1:6] == cells[1:6], "overall row differs from the summary")
    print(f"centralized: summary and {len(tasks)} task rows match, overall gain {cells[3]} %")


def check_federated(markdown, results):
    """Dense federated, one seed: FedPrompt, MoPs and gain as computed here."""
    summary = section(markdown, "## Federated")
    require("| Setting | FedPrompt | MoPs | Gain (%) |" in summary, "no FedPrompt header")
    cells = row(summary, "dense")
    _, b, tasks = last_overall(results / "federate.fedprompt.h5")
    _, m, _ = last_overall(results / "federate.mop.h5")
    expected = [f"{b:.3f}", f"{m:.3f}", f"{100 * (b - m) / b:+.1f}", "1 / 1 / 1", "finished"]
    require(cells[1:] == expected, f"federated summary {cells[1:]}, expected {expected}")
    detail = section(markdown, "## Federated")
    for task in tasks + ["**overall**"]:
        row(detail, task)
    print(f"federated: summary row {cells}")


def copy_with(source, target, attributes=(), drop=(), model=None, options=()):
    """Copies a results file and changes root attributes (and the config's model and other options)."""
    shutil.copy(source, target)
    with h5py.File(target, "r+") as f:
        for name in drop:
            del f.attrs[name]
        for name, value in attributes:
            f.attrs[name] = value
        config = json.loads(f.attrs["config"])
        if model is not None:
            config["options"]["model"] = model
        config["options"].update(dict(options))
        f.attrs["config"] = json.dumps(config)


def check_partners(report_py, work):
    """MoPs at two gate settings and LoRA at two ranks: a row per combination; the baseline (which
    reads no gate option) pairs with all, each LoRA rank with both gate settings."""
    results, partners = work / "results", work / "partners"
    shutil.rmtree(partners, ignore_errors=True)
    partners.mkdir()
    for seed in (1, 2):
        for method in ("prompt", "mop", "lora"):
            shutil.copy(results / f"train-s{seed}.{method}.h5", partners / f"s{seed}.{method}.h5")
        copy_with(results / f"train-s{seed}.mop.h5", partners / f"topk-s{seed}.mop.h5", options=[("gate-top-k", "1")])
    copy_with(results / "train-s1.lora.h5", partners / "rank4-s1.lora.h5", options=[("lora-rank", "4")])
    code, out, err = run_report(report_py, [partners], work / "report-partners")
    require(code == 0, f"report on the partners exited {code}: {err}")
    summary = section((work / "report-partners" / "report.md").read_text(), "## Centralized")
    rows = {(k, r): row(summary, f"dense [gate-top-k={k}, lora-rank={r}]") for k in (0, 1) for r in (4, 8)}
    require(len({cells[1] for cells in rows.values()}) == 1, f"the baseline differs between rows {rows}")
    for k in (0, 1):
        require(rows[(k, 8)][4] == rows[(1 - k, 8)][4] and rows[(k, 4)][4] != rows[(k, 8)][4],
                f"LoRA cells by rank {rows}")
        require(rows[(k, 4)][4].count("±") == 0, f"rank 4 has one seed: {rows[(k, 4)]}")
    require(all(cells[-2] == "2 / 2 / 2" for cells in rows.values()), f"seeds {rows}")
    print("partners: 2 gate settings x 2 LoRA ranks = 4 rows, the baseline in each")


def check_variants(report_py, work):
    """Settings from the attribute and from the model file's name; a run still running."""
    results, copies = work / "results", work / "copies"
    shutil.rmtree(copies, ignore_errors=True)
    shutil.rmtree(work / "report-copies", ignore_errors=True)
    copies.mkdir()
    int8 = json.dumps({"method": "sparsegpt", "pattern": "2:4", "int8": True, "achieved_sparsity": 0.5})
    for method in ("prompt", "mop"):
        copy_with(results / f"train-s1.{method}.h5", copies / f"name.{method}.h5", drop=["compression"],
                  model="/nowhere/sparsegpt---sparsity0.9-fp32.safetensors")
        copy_with(results / f"train-s1.{method}.h5", copies / f"int8.{method}.h5", attributes=[("compression", int8)])
    copy_with(results / "federate.fedprompt.h5", copies / "live.fedprompt.h5")
    copy_with(results / "federate.mop.h5", copies / "live.mop.h5", attributes=[("status", "running")])
    code, out, err = run_report(report_py, [copies], work / "report-copies")
    require(code == 0, f"report on the copies exited {code}: {err}")
    markdown = (work / "report-copies" / "report.md").read_text()
    row(section(markdown, "## Centralized"), "SparseGPT 90 %")
    row(section(markdown, "## Centralized"), "SparseGPT 2:4 + int8")
    require("read from the model file's name sparsegpt---sparsity0.9-fp32.safetensors" in markdown,
            "no note that the setting came from the model file's name")
    live = section(markdown, "## Federated")
    require("| Task | FedPrompt | MoPs (running) | Gain (%) |" in live, "running MoPs column not marked")
    require("still running: MoPs seed 3 is running (round 6 of 6" in live, "no note on the running run")
    require(row(live, "dense")[-1] == "1 of 2 runs still running", f"status cell {row(live, 'dense')}")
    for png in ("curves-centralized-sparsegpt-90.png", "gates-centralized-sparsegpt-2-4-int8.png",
                "clients-federated-dense-s3.png", "gain-centralized.png"):
        check_png(work / "report-copies" / png)
    require("](gain-centralized.png)" in markdown, "report.md does not show the gain figure")
    # Its points: SparseGPT unstructured at 90 % and SparseGPT N:M + int8 at 50 % (2:4), one pair each.
    sys.path.insert(0, str(Path(report_py).parent))
    import report
    series = report.gain_series(report.make_groups([report.read_run(p) for p in sorted(copies.glob("*.h5"))]))
    require(sorted(series) == ["SparseGPT N:M + int8", "SparseGPT unstructured"], f"gain series {sorted(series)}")
    require([p for p, _ in series["SparseGPT unstructured"]] == [90.0], f"{series['SparseGPT unstructured']}")
    require([p for p, _ in series["SparseGPT N:M + int8"]] == [50.0], f"{series['SparseGPT N:M + int8']}")
    require(not (work / "report-copies" / "gain-federated.png").exists(), "a gain figure for dense-only federated runs")
    print("copies: settings from the attribute and the model file name, a running run marked")


def check_tables(report_py, work):
    """The report on the files as written by mops."""
    results, out = work / "results", work / "report"
    shutil.rmtree(out, ignore_errors=True)
    code, stdout, stderr = run_report(report_py, [results], out)
    require(code == 0, f"report exited {code}: {stderr}")
    markdown = (out / "report.md").read_text()
    check_centralized(markdown, results)
    check_federated(markdown, results)
    figures = ["curves-centralized-dense.png", "gates-centralized-dense.png", "curves-federated-dense.png",
               "gates-federated-dense.png", "clients-federated-dense-s3.png"]
    for png in figures:
        check_png(out / png)
        require(f"]({png})" in markdown, f"report.md does not show {png}")
    print(f"figures: {len(figures)} PNGs, all shown in report.md")
    check_variants(report_py, work)
    check_partners(report_py, work)


def check_rejects(report_py, work):
    """Exit 1 and one clear line for a file that is not HDF5, one of another schema and one of an unknown method."""
    work.mkdir(parents=True, exist_ok=True)
    not_hdf5, other, peer = work / "not-hdf5.h5", work / "other-schema.h5", work / "dora.h5"
    not_hdf5.write_text("step,loss\n1,2.0\n")
    with h5py.File(other, "w") as f:
        f.attrs["schema"] = "other-results/2"
        f["eval/ppl_all"] = np.ones(3)
    with h5py.File(peer, "w") as f:
        f.attrs["schema"] = "mops-results/1"
        f.attrs["method"] = "dora"
    for path, words in ((not_hdf5, "not a readable HDF5 file"), (other, "schema is 'other-results/2'"),
                        (peer, "method 'dora' is not one of mop, prompt, fedprompt, lora, ia3, prefix, mpt")):
        code, stdout, stderr = run_report(report_py, [path], work / "rejected")
        require(code == 1, f"{path.name}: exit {code}, expected 1")
        require("Traceback" not in stderr, f"{path.name}: a traceback:\n{stderr}")
        require(len(stderr.strip().splitlines()) == 1, f"{path.name}: not one line:\n{stderr}")
        require(str(path) in stderr and words in stderr, f"{path.name}: unclear message: {stderr}")
        print(f"{path.name}: exit 1, {stderr.strip()}")


def main(argv):
    require(len(argv) == 3 and argv[0] in ("tables", "rejects"), __doc__)
    check = check_tables if argv[0] == "tables" else check_rejects
    check(Path(argv[1]), Path(argv[2]))
    print("check_report.py: all checks passed")


if __name__ == "__main__":
    main(sys.argv[1:])
