#!/usr/bin/env python3
"""Tables and figures from MoPs results files (schema "mops-results/1", DESIGN.md section 4).

usage: jobs/report.py RESULTS... --out DIR

RESULTS are .h5 files or directories (searched recursively for *.h5). Writes into DIR:
  report.md                   the paper's tables: per mode and compression setting, Baseline
                              (FedPrompt when federated), MoPs and Gain (%) per task and overall,
                              then a column per peer method present (LoRA, IA3, prefix, MPT) and
                              the gain of MoPs against it, mean +- sample std over seeds; a
                              summary table per mode
  gates-SETTING.png           MoPs mean gate per task x expert, after gate pretraining and after
                              training (figures 2/3 of the paper), mean over seeds
  clients-SETTING-sSEED.png   federated MoPs: each client's mean gate and its dominant expert
                              per round
  curves-SETTING.png          test perplexity vs step (centralized) or round (federated)
  gain-MODE.png               the overall gain of MoPs against sparsity (the paper's main trend):
                              one line per pruning method and pattern kind (unstructured, N:M;
                              + int8 apart), mean +- std over paired seeds

Works on files that a run is still writing (they are whole HDF5 snapshots): it reads what is
there and marks runs whose root attribute `status` is not "finished". Exits 1 with one line
naming the file on a file that is not HDF5 or has another schema.
Letters: T tasks, E experts, V evaluations, R rounds, A active clients, C clients.
"""
import argparse
import datetime
import json
import os
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402

SCHEMA = "mops-results/1"
MODES = ("centralized", "federated")
BASELINE_METHOD = {"centralized": "prompt", "federated": "fedprompt"}
PEER_NAME = {"lora": "LoRA", "ia3": "IA3", "prefix": "prefix", "mpt": "MPT"}  # mops train/federate --method
KNOWN_METHODS = ("mop", "prompt", "fedprompt") + tuple(PEER_NAME)
BASELINE_NAME = {"centralized": "Baseline", "federated": "FedPrompt"}
STEP_NAME = {"centralized": "step", "federated": "round"}
PRUNE_NAMES = {"sparsegpt": "SparseGPT", "wanda": "Wanda", "magnitude": "Magnitude"}
# Options that say how a run was executed, not what it trained: ignored when pairing runs.
RUN_CONTROL_OPTIONS = {"method", "out", "resume", "threads", "comm"}


class ReportError(Exception):
    """A problem with the input, reported as one line and exit status 1."""


# ----------------------------------------------------------------------------- reading


@dataclass
class Setting:
    """A compression setting: its label, where it was read from, and a sort key."""
    label: str
    source: str
    order: tuple


@dataclass(eq=False)
class Run:
    """One results file, read whole into memory."""
    path: Path
    mode: str
    method: str
    seed: int
    status: str
    setting: Setting
    options: dict
    tasks: list
    eval_step: np.ndarray      # (V,)
    ppl: np.ndarray            # (V, T)
    ppl_all: np.ndarray        # (V,)
    done: int                  # last trained step (centralized) or round (federated)
    p0_only: float             # overall perplexity with P0 only, before training (NaN if absent)
    gate_by_task: np.ndarray = None          # (V, T, E), MoPs
    gate_pretrained: np.ndarray = None       # (T, E), MoPs
    fed: dict = field(default_factory=dict)  # clients (R, A), client_gate (R, A, E), partition (C, T)

    @property
    def finished(self):
        return self.status == "finished"

    @property
    def total(self):
        """Planned steps (centralized) or rounds (federated), from the config."""
        return int(self.options.get("steps" if self.mode == "centralized" else "rounds", 0))


def text(value):
    """An HDF5 string attribute or element as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def model_file_record(model_path):
    """The compression record in a safetensors model's metadata, or None when unreadable."""
    try:
        with open(model_path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > 100_000_000:
                return None
            header = json.loads(f.read(size))
        record = header.get("__metadata__", {}).get("compression")
        return json.loads(record) if record else {"method": "none"}
    except (OSError, ValueError, struct.error, AttributeError):
        return None


def model_name_record(model_path):
    """A compression record parsed from a model file name like sparsegpt---nm2:4-int8.safetensors."""
    name = os.path.basename(model_path).lower()
    method = next((m for m in PRUNE_NAMES if m in name), None)
    nm = re.search(r"nm(\d+):(\d+)", name)
    unstructured = re.search(r"sparsity(\d*\.?\d+)", name)
    if method is None or not (nm or unstructured):
        return None
    pattern = f"{nm[1]}:{nm[2]}" if nm else f"{float(unstructured[1]) * 100:g}%"
    return {"method": method, "pattern": pattern, "int8": "int8" in name}


def setting_of(record, source):
    """The Setting of a compression record, e.g. "SparseGPT 75 %", "SparseGPT 2:4 + int8"."""
    if record is None:
        return Setting("unknown", source, (2,))
    method = record.get("method", "?")
    if method == "none":
        return Setting("dense", source, (0,))
    pattern = str(record.get("pattern", "?"))
    nm = re.fullmatch(r"(\d+):(\d+)", pattern)
    percent = re.fullmatch(r"([\d.]+)%", pattern)
    fraction = int(nm[1]) / int(nm[2]) if nm else float(percent[1]) / 100 if percent else 0.0
    int8 = bool(record.get("int8", False))
    label = f"{PRUNE_NAMES.get(method, method)} {pattern.replace('%', ' %')}" + (" + int8" if int8 else "")
    return Setting(label, source, (1, method, bool(nm), fraction, int8))


def read_setting(attrs, options):
    """The compression setting: the `compression` attribute, else the model file's metadata,
    else the model file's name (older files have no attribute)."""
    if "compression" in attrs:
        return setting_of(json.loads(text(attrs["compression"])), "the file's `compression` attribute")
    model = options.get("model", "")
    record = model_file_record(model)
    if record is not None:
        return setting_of(record, f"the metadata of the model file {model}")
    return setting_of(model_name_record(model), f"the model file's name {os.path.basename(model)}")


def rows(f, name, shape_tail=()):
    """Dataset NAME as float64, or an empty array with the given trailing shape when absent."""
    if name in f:
        return np.asarray(f[name][()], dtype=np.float64)
    return np.zeros((0,) + shape_tail)


def perplexities(f, name, shape_tail=()):
    """Perplexities with NaN where a task had no test examples (mops writes NaN there; files
    from before 2026-11-25 wrote 0)."""
    values = rows(f, name, shape_tail)
    values[~(values > 0)] = np.nan
    return values


def gates(f, name):
    """Mean gate vectors (..., E) with NaN rows where a task had no examples (NaN rows; all-zero
    rows in files from before 2026-11-25)."""
    values = rows(f, name)
    values[~(values.sum(axis=-1) > 0)] = np.nan
    return values


def read_run(path):
    """Reads one results file; ReportError when it is not HDF5 or not a MoPs results file."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ReportError(f"{path}: not a readable HDF5 file ({str(e).splitlines()[0]})") from None
    with f:
        if "schema" not in f.attrs:
            raise ReportError(f"{path}: no root attribute schema; a MoPs results file has schema {SCHEMA!r}")
        schema = text(f.attrs["schema"])
        if schema != SCHEMA:
            raise ReportError(f"{path}: root attribute schema is {schema!r}, expected {SCHEMA!r}")
        method = text(f.attrs.get("method", ""))
        if method not in KNOWN_METHODS:
            raise ReportError(f"{path}: method {method!r} is not one of {', '.join(KNOWN_METHODS)}")
        try:
            return read_results(path, f)
        except (KeyError, ValueError, TypeError) as e:
            raise ReportError(f"{path}: not a complete {SCHEMA} file ({e})") from None


def read_results(path, f):
    """The Run in an open file of the right schema."""
    attrs = f.attrs
    mode = text(attrs["mode"])
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    options = json.loads(text(attrs["config"]))["options"]
    tasks = [text(t) for t in f["tasks"][()]]
    T = len(tasks)
    step = f["train/step"][()] if "train/step" in f else []
    references = json.loads(text(attrs.get("references", "{}")))
    run = Run(path=path, mode=mode, method=text(attrs["method"]), seed=int(attrs["seed"]),
              status=text(attrs.get("status", "unknown")), setting=read_setting(attrs, options),
              options={k: v for k, v in options.items() if k not in RUN_CONTROL_OPTIONS},
              tasks=tasks, eval_step=rows(f, "eval/step").astype(np.int64), ppl=perplexities(f, "eval/ppl", (T,)),
              ppl_all=perplexities(f, "eval/ppl_all"), done=int(step[-1]) if len(step) else 0,
              p0_only=float(references.get("p0_only", {}).get("overall", np.nan)))
    if "gate/by_task" in f:
        run.gate_by_task = gates(f, "gate/by_task")
    if "state/gate_by_task_after_pretraining" in f:
        run.gate_pretrained = gates(f, "state/gate_by_task_after_pretraining")
    for name in ("clients", "client_gate", "partition"):
        if f"fed/{name}" in f:
            run.fed[name] = f[f"fed/{name}"][()]
    return run


def find_results(arguments):
    """The .h5 files named or found (recursively) under the directories named."""
    paths = []
    for argument in map(Path, arguments):
        if argument.is_dir():
            found = sorted(argument.rglob("*.h5"))
            if not found:
                raise ReportError(f"{argument}: no *.h5 files in this directory")
            paths += found
        elif argument.is_file():
            paths.append(argument)
        else:
            raise ReportError(f"{argument}: no such file or directory")
    return list(dict.fromkeys(p.resolve() for p in paths))


# ----------------------------------------------------------------------------- grouping


@dataclass(eq=False)
class Group:
    """The runs of one mode and compression setting (and one set of other options)."""
    mode: str
    setting: Setting
    options: dict
    runs: list
    variant: str = ""          # the options that tell this group from others of the same setting
    name: str = ""             # file name stem of its figures
    ignored: list = field(default_factory=list)

    @property
    def title(self):
        return self.setting.label + (f" [{self.variant}]" if self.variant else "")

    def of(self, method):
        """Runs of one method ("baseline", "mop" or a peer method), by seed."""
        wanted = BASELINE_METHOD[self.mode] if method == "baseline" else method
        return sorted((r for r in self.runs if r.method == wanted), key=lambda r: r.seed)

    @property
    def peers(self):
        """The peer methods with runs here, in PEER_NAME's order."""
        return [m for m in PEER_NAME if self.of(m)]

    @property
    def tasks(self):
        return self.runs[0].tasks


# Options that only some methods read (exact names, or prefixes ending in "-"): a run's other
# options say how it was started, not what it trained, so they do not keep it from its partners.
METHOD_OPTIONS = {"gate-": {"mop"}, "lora-": {"lora"}, "mid-init": {"mop", "prompt", "fedprompt", "mpt"},
                  "experts": {"mop", "prompt", "fedprompt", "prefix", "mpt"},
                  "prompts-per-expert": {"mop", "prompt", "fedprompt", "prefix", "mpt"}}


def reads_option(method, name):
    """Whether METHOD reads option NAME (METHOD_OPTIONS)."""
    for option, methods in METHOD_OPTIONS.items():
        if name == option or (option.endswith("-") and name.startswith(option)):
            return method in methods
    return True


def experiment_options(run):
    """The options that seeds of one experiment share (the model is named by the setting), of
    those the run's method reads."""
    return {k: v for k, v in run.options.items() if k not in ("seed", "model") and reads_option(run.method, k)}


def group_key(run):
    """Runs with the same key are seeds of one experiment."""
    return run.mode, run.setting.label, json.dumps(experiment_options(run), sort_keys=True)


def agree(options, other):
    """Whether two option sets are equal on every option both have."""
    return all(other[k] == v for k, v in options.items() if k in other)


def keep_one_per_seed(runs):
    """One run per (seed, model, method): the one with most evaluations, then the newest file.
    Returns (kept, ignored)."""
    best = {}
    for run in runs:
        key = (run.seed, run.options.get("model"), run.method)
        rank = (len(run.eval_step), run.path.stat().st_mtime)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, run)
    kept = [run for _, run in best.values()]
    return kept, [r for r in runs if r not in kept]


def make_groups(runs):
    """Seeds of one experiment per method (group_key), then the comparisons: method by method
    (MoPs first), each method's experiments join every group whose options they agree with on
    the options both read (a baseline or a LoRA run serves MoPs at any gate setting), one copy of
    the group per experiment that joins it; those that join none start groups of their own.
    Groups of one setting that differ in options get a variant label naming them."""
    experiments = {}
    for run in runs:
        experiments.setdefault(group_key(run), []).append(run)
    comparisons = []  # (mode, setting label, the union of the members' options, runs)
    for method in ["mop", "prompt", "fedprompt"] + list(PEER_NAME):
        mine = [(experiment_options(m[0]), m) for m in experiments.values() if m[0].method == method]
        fits = lambda c, options, members: c[:2] == (members[0].mode, members[0].setting.label) and agree(options, c[2])
        grown = []
        for c in comparisons:
            joining = [(options, members) for options, members in mine if fits(c, options, members)]
            grown += [(c[0], c[1], {**c[2], **options}, c[3] + members) for options, members in joining] or [c]
        grown += [(m[0].mode, m[0].setting.label, options, list(m)) for options, m in mine
                  if not any(fits(c, options, m) for c in comparisons)]
        comparisons = grown
    groups = []
    for mode, _, options, members in comparisons:
        kept, ignored = keep_one_per_seed(members)
        groups.append(Group(mode, members[0].setting, options, kept, ignored=ignored))
    groups.sort(key=lambda g: (MODES.index(g.mode), g.setting.order, g.setting.label, json.dumps(g.options)))
    for g in groups:
        siblings = [h for h in groups if (h.mode, h.setting.label) == (g.mode, g.setting.label)]
        if len(siblings) > 1:
            keys = set().union(*(h.options for h in siblings))
            differ = sorted(k for k in keys if len({h.options.get(k) for h in siblings}) > 1)
            g.variant = ", ".join(f"{k}={g.options.get(k, '(unset)')}" for k in differ)
        index = f"-v{siblings.index(g) + 1}" if len(siblings) > 1 else ""
        g.name = f"{g.mode}-{re.sub(r'[^a-z0-9]+', '-', g.setting.label.lower()).strip('-')}{index}"
    return groups


# ----------------------------------------------------------------------------- tables


def mean_std(values, digits=3, sign=""):
    """'m ± s' (sample std) over the finite values, 'm' for one, '–' for none; '(n=k)' added
    when only k of the values are finite (tasks without test examples in some seeds)."""
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return "–"
    m = np.mean(finite)
    shown = f"{m:{sign}.{digits}f}"
    if len(finite) > 1:
        shown += f" ± {np.std(finite, ddof=1):.{digits}f}"
    return shown + (f" (n={len(finite)})" if len(finite) < len(values) else "")


def nan_mean(arrays):
    """Element-wise mean over the finite entries of equally shaped arrays (NaN where none is)."""
    stack = np.array(arrays)
    count = np.isfinite(stack).sum(axis=0)
    total = np.where(np.isfinite(stack), stack, 0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def last_values(run):
    """(T + 1) last evaluated perplexities, per task then overall."""
    return np.append(run.ppl[-1], run.ppl_all[-1])


def used(runs):
    """The runs that tables and means use: the finished ones with evaluations or, while none of
    them has finished, all with evaluations (then marked running)."""
    evaluated = [r for r in runs if len(r.eval_step)]
    return [r for r in evaluated if r.finished] or evaluated


def column(runs):
    """(T + 1, n) last perplexities of the used runs, or None."""
    chosen = used(runs)
    return np.array([last_values(r) for r in chosen]).T if chosen else None


def gains(group, against="baseline"):
    """(T + 1, n) gains in % of MoPs against AGAINST (the baseline or a peer method) over the seeds
    where both have used runs."""
    baseline = {(r.seed, r.options.get("model")): last_values(r) for r in used(group.of(against))}
    pairs = [100 * (b - last_values(r)) / b for r in used(group.of("mop"))
             if (b := baseline.get((r.seed, r.options.get("model")))) is not None]
    return np.array(pairs).T if pairs else None


def cell(matrix, row, digits=3, sign=""):
    """Table cell: row ROW of a (T + 1, n) matrix as mean +- std."""
    return "–" if matrix is None else mean_std(matrix[row], digits, sign)


def plural(n, noun):
    """'1 seed', '2 seeds'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def running_mark(runs):
    """' (running)' when the used runs are still running."""
    return " (running)" if any(not r.finished for r in used(runs)) else ""


def seeds_text(runs):
    """'1, 2, 3': the seeds of the used runs."""
    return ", ".join(str(r.seed) for r in used(runs)) or "none evaluated yet"


def status_notes(group):
    """One line for every run that is not finished: where it is, and whether the means use it."""
    notes = []
    for method in ["baseline", "mop"] + group.peers:
        runs = group.of(method)
        for run in runs:
            if run.finished:
                continue
            name = method_label(method, group.mode)
            step = STEP_NAME[group.mode]
            note = f"{name} seed {run.seed} is {run.status} ({step} {run.done} of {run.total}; "
            if len(run.eval_step) == 0:
                note += "no evaluation yet)"
            else:
                note += (f"last evaluation at {step} {run.eval_step[-1]}: overall perplexity {run.ppl_all[-1]:.3f}; "
                         f"{'in' if run in used(runs) else 'not in'} the means)")
            notes.append(note)
    return notes


def method_label(method, mode):
    """'Baseline' / 'FedPrompt', 'MoPs', or the peer method's name."""
    return BASELINE_NAME[mode] if method == "baseline" else "MoPs" if method == "mop" else PEER_NAME[method]


def peer_headers(peers):
    """The table header cells of the peer methods: each, then MoPs' gain against it."""
    return "".join(f" {PEER_NAME[p]} | MoPs vs {PEER_NAME[p]} (%) |" for p in peers)


def peer_cells(group, peers, row):
    """Row ROW's cells of the peer methods (peer_headers)."""
    return "".join(f" {cell(column(group.of(p)), row)}{running_mark(group.of(p))} | "
                   f"{cell(gains(group, p), row, 1, '+')} |" for p in peers)


def summary_table(groups, mode):
    """Markdown rows: one per setting, overall perplexity, gain, the peer methods and seeds."""
    name = BASELINE_NAME[mode]
    peers = [p for p in PEER_NAME if any(p in g.peers for g in groups)]
    lines = [f"| Setting | {name} | MoPs | Gain (%) |{peer_headers(peers)} Seeds ({name} / MoPs / pairs) | Status |",
             "|---|---|---|---|" + "---|---|" * len(peers) + "---|---|"]
    for g in groups:
        b, m, gain = column(g.of("baseline")), column(g.of("mop")), gains(g)
        counts = " / ".join(str(0 if x is None else x.shape[1]) for x in (b, m, gain))
        running = sum(not r.finished for r in g.runs)
        status = f"{running} of {len(g.runs)} runs still running" if running else "finished"
        lines.append(f"| {g.title} | {cell(b, -1)}{running_mark(g.of('baseline'))} | {cell(m, -1)}"
                     f"{running_mark(g.of('mop'))} | {cell(gain, -1, 1, '+')} |{peer_cells(g, peers, -1)} {counts} | "
                     f"{status} |")
    return lines


def setting_section(group):
    """Markdown for one setting: the per-task table, notes and its figures."""
    name = BASELINE_NAME[group.mode]
    b, m, gain = column(group.of("baseline")), column(group.of("mop")), gains(group)
    pairs = 0 if gain is None else gain.shape[1]
    lines = [f"### {group.title}", "",
             f"Test perplexity (response tokens) at each run's last evaluation, mean ± sample std over seeds "
             f"({name}: seeds {seeds_text(group.of('baseline'))}; MoPs: seeds {seeds_text(group.of('mop'))}; "
             + "".join(f"{PEER_NAME[p]}: seeds {seeds_text(group.of(p))}; " for p in group.peers)
             + f"gain over {plural(pairs, 'paired seed')}).", "",
             f"| Task | {name}{running_mark(group.of('baseline'))} | MoPs{running_mark(group.of('mop'))} | Gain (%) |"
             f"{peer_headers(group.peers)}",
             "|---|---|---|---|" + "---|---|" * len(group.peers)]
    for row, task in enumerate(group.tasks + ["overall"]):
        label = f"**{task}**" if task == "overall" else task
        lines.append(f"| {label} | {cell(b, row)} | {cell(m, row)} | {cell(gain, row, 1, '+')} |"
                     f"{peer_cells(group, group.peers, row)}")
    lines.append("")
    lines += [f"- still running: {note}" for note in status_notes(group)]
    lines += [f"- ignored (another file for the same seed and method): {r.path}" for r in group.ignored]
    lines.append(f"- compression setting read from {group.setting.source}")
    lines.append(f"- files: {', '.join(r.path.name for r in sorted(group.runs, key=lambda r: (r.seed, r.method)))}")
    lines.append("")
    return lines


def write_report(groups, figures, out, runs):
    """Writes report.md: a summary table per mode, then a section per setting with its figures."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    running = sum(not r.finished for r in runs)
    lines = ["# MoPs results", "",
             f"{len(runs)} results files, {running} still running; generated {now}. "
             "Gain (%) = (baseline - MoPs) / baseline x 100, per seed, then mean ± sample std (MoPs vs X (%): the "
             "same against the peer method X); "
             "(n=k): only k seeds had test examples of that task.", ""]
    for mode in MODES:
        mine = [g for g in groups if g.mode == mode]
        if not mine:
            continue
        lines += [f"## {mode.capitalize()}", "", "Overall test perplexity per setting:", ""]
        lines += summary_table(mine, mode) + [""]
        lines += [f"![{caption}]({png})" for png, caption in figures.get(mode, [])] + [""]
        for g in mine:
            lines += setting_section(g)
            lines += [f"![{caption}]({png})" for png, caption in figures.get(g.name, [])]
            lines.append("")
    (out / "report.md.tmp").write_text("\n".join(lines))
    os.replace(out / "report.md.tmp", out / "report.md")   # a reader never sees half a report


# ----------------------------------------------------------------------------- figures


def heatmap(ax, values, row_labels, col_labels, annotate=True):
    """Draws VALUES (rows x cols, in [0, 1], NaN grey: no data) with labelled ticks and,
    optionally, the values."""
    colours = plt.get_cmap("viridis").copy()
    colours.set_bad("#cccccc")
    image = ax.imshow(values, vmin=0, vmax=1, cmap=colours, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    if annotate:
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, "no data" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if np.isnan(v) or v > 0.6 else "white")
    return image


def steps_text(runs, mode):
    """'step 20000' or 'steps 500-20000' for the runs' last evaluations."""
    last = sorted({int(r.eval_step[-1]) for r in runs})
    word = STEP_NAME[mode]
    return f"{word} {last[0]}" if len(last) == 1 else f"{word}s {last[0]}–{last[-1]}"


def gate_panel(matrices, subtitle, tasks):
    """(mean over seeds, subtitle, row labels); a task that only some seeds have examples of is
    labelled with how many."""
    counts = np.isfinite(np.array(matrices)).all(axis=-1).sum(axis=0)   # (T,)
    n = len(matrices)
    labels = [t if k == n else f"{t} ({k} of {n} seeds)" for t, k in zip(tasks, counts)]
    return nan_mean(matrices), f"{subtitle} ({plural(n, 'seed')})", labels


def plot_gates(group, path):
    """Task x expert mean gate after gate pretraining and after training, mean over seeds."""
    pretrained = [r.gate_pretrained for r in group.of("mop") if r.gate_pretrained is not None]
    trained = [r for r in used(group.of("mop")) if r.gate_by_task is not None]
    panels = []
    if pretrained:
        panels.append(gate_panel(pretrained, "after gate pretraining", group.tasks))
    if trained:
        subtitle = f"after training, {steps_text(trained, group.mode)}{running_mark(trained)}"
        panels.append(gate_panel([r.gate_by_task[-1] for r in trained], subtitle, group.tasks))
    if not panels:
        return False
    T, E = panels[0][0].shape
    fig, axes = plt.subplots(1, len(panels), figsize=(3.5 + 0.75 * E * len(panels) + 2.2, 1.6 + 0.45 * T),
                             squeeze=False, constrained_layout=True)
    for ax, (values, subtitle, labels) in zip(axes[0], panels):
        image = heatmap(ax, values, labels, range(E))
        ax.set_title(subtitle, fontsize=10)
        ax.set_xlabel("expert")
        ax.set_ylabel("task")
    fig.colorbar(image, ax=axes[0].tolist(), label="mean gate weight", shrink=0.9)
    fig.suptitle(f"{group.mode} · {group.title}: MoPs mean gate per task (mean over seeds)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def client_order(clients, partition):
    """Clients sorted by dominant task (most records), then by its share; with that task."""
    dominant = partition.argmax(axis=1)
    share = partition.max(axis=1) / np.maximum(partition.sum(axis=1), 1)
    ordered = sorted(clients, key=lambda c: (dominant[c], -share[c], c))
    return ordered, [int(dominant[c]) for c in ordered]


def client_gates(run):
    """For every client that was ever active: its mean gate over the rounds it was active
    (rows: clients, cols: E) and its dominant expert per round (rows: clients, cols: R; -1 inactive)."""
    clients, gate = run.fed["clients"], run.fed["client_gate"]   # (R, A), (R, A, E)
    R, A, E = gate.shape
    active, task = client_order(sorted(set(clients.ravel().tolist())), run.fed["partition"])
    mean = np.array([gate[clients == c].mean(axis=0) for c in active])
    dominant = np.full((len(active), R), -1)
    index = {c: i for i, c in enumerate(active)}
    for r in range(R):
        for a in range(A):
            dominant[index[clients[r, a]], r] = gate[r, a].argmax()
    return active, task, mean, dominant


def label_task_groups(ax, task, tasks):
    """Second y axis on the left naming each block of clients with the same dominant task,
    with lines between blocks."""
    starts = [i for i in range(len(task)) if i == 0 or task[i] != task[i - 1]]
    ends = starts[1:] + [len(task)]
    for s in starts[1:]:
        ax.axhline(s - 0.5, color="white", linewidth=1.5)
    side = ax.secondary_yaxis(-0.16)
    side.set_yticks([(s + e - 1) / 2 for s, e in zip(starts, ends)], [tasks[task[s]] for s in starts])
    side.tick_params(length=0)
    side.set_ylabel("dominant task of the client's data")


def plot_clients(group, run, path):
    """Federated MoPs: client x expert mean gate, and client x round dominant expert."""
    active, task, mean, dominant = client_gates(run)
    n, E = mean.shape
    R = dominant.shape[1]
    height = max(4.5, 1.8 + 0.12 * n)
    fig, (left, right) = plt.subplots(1, 2, figsize=(6 + 0.4 * E + 0.3 * R, height), sharey=True,
                                      gridspec_kw={"width_ratios": [E, max(R, E)]}, constrained_layout=True)
    image = heatmap(left, mean, [str(c) for c in active], range(E), annotate=n <= 20)
    left.tick_params(axis="y", labelsize=6 if n > 40 else 8)
    left.set_xlabel("expert")
    left.set_ylabel("client id")
    left.set_title("mean gate over the rounds it was active", fontsize=10)
    label_task_groups(left, task, run.tasks)
    bottom = {"location": "bottom", "shrink": 0.8, "fraction": 0.6 / height}  # colour bars ~0.6 in high
    fig.colorbar(image, ax=left, label="mean gate weight", **bottom)

    colours = plt.get_cmap("tab10" if E <= 10 else "tab20", E)
    colours.set_bad("#eeeeee")
    grid = right.imshow(np.ma.masked_less(dominant, 0), cmap=colours, vmin=-0.5, vmax=E - 0.5,
                        aspect="auto", interpolation="nearest")
    right.set_xticks(range(R), [str(r + 1) for r in range(R)], fontsize=7 if R > 20 else 9)
    right.set_xlabel("round")
    right.set_title("dominant expert per round (grey: not active)", fontsize=10)
    bar = fig.colorbar(grid, ax=right, ticks=range(E), **bottom)
    bar.set_label("dominant expert (argmax of the client's mean gate)")
    state = "" if run.finished else f", {run.status} at round {run.done} of {run.total}"
    fig.suptitle(f"federated · {group.title}: MoPs client gates, seed {run.seed} "
                 f"({n} clients were active in {R} rounds{state})")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def mean_label(runs):
    """'seed 3' for one run, 'mean of 3 seeds' for more."""
    return f"seed {runs[0].seed}" if len(runs) == 1 else f"mean of {len(runs)} seeds"


def plot_curves(group, path):
    """Test perplexity vs step or round: thin line per seed, bold mean, both methods."""
    methods = [(BASELINE_NAME[group.mode], group.of("baseline"), "C0"), ("MoPs", group.of("mop"), "C3")]
    if not any(len(r.eval_step) for _, runs, _ in methods for r in runs):
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for name, runs, colour in methods:
        for r in runs:
            ax.plot(r.eval_step, r.ppl_all, color=colour, linewidth=0.8, alpha=0.5,
                    linestyle="-" if r.finished else "--")
        chosen = used(runs)
        common = sorted(set.intersection(*(set(r.eval_step.tolist()) for r in chosen))) if chosen else []
        if common:
            mean = np.mean([[r.ppl_all[list(r.eval_step).index(s)] for s in common] for r in chosen], axis=0)
            ax.plot(common, mean, color=colour, linewidth=2.5, marker="o",
                    label=f"{name}: {mean_label(chosen)}{running_mark(chosen)}")
    p0 = [r.p0_only for r in group.runs if np.isfinite(r.p0_only)]
    if p0:
        ax.axhline(np.mean(p0), color="grey", linestyle=":", label="P0 only, before training")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xlabel(f"training {STEP_NAME[group.mode]}")
    ax.set_ylabel("test perplexity (response tokens, all tasks)")
    running = any(not r.finished for r in group.runs)
    ax.set_title(f"{group.mode} · {group.title}\nthin: one seed{' (dashed: running)' if running else ''}; bold: mean")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def gain_series(groups):
    """{series label: [(sparsity %, gains over paired seeds)]} of the compressed settings with
    pairs; a series per pruning method, unstructured or N:M, with or without int8, and variant."""
    series = {}
    for g in groups:
        gain = gains(g)
        if gain is None or g.setting.order[0] != 1:   # dense and unknown settings have no sparsity
            continue
        _, method, structured, fraction, int8 = g.setting.order
        label = (f"{PRUNE_NAMES.get(method, method)} {'N:M' if structured else 'unstructured'}"
                 + (" + int8" if int8 else "") + (f" [{g.variant}]" if g.variant else ""))
        series.setdefault(label, []).append((100 * fraction, gain[-1]))
    return {label: sorted(points, key=lambda p: p[0]) for label, points in series.items()}


def plot_gain_vs_sparsity(groups, mode, path):
    """The overall gain (%) of MoPs over the baseline against sparsity, one line per series."""
    series = gain_series([g for g in groups if g.mode == mode])
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for label, points in series.items():
        x = [p for p, _ in points]
        mean = [float(np.mean(v)) for _, v in points]
        std = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for _, v in points]
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=4, label=label)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel(f"gain of MoPs over {BASELINE_NAME[mode]} (%, all tasks)")
    ax.set_title(f"{mode}: gain against sparsity (mean ± std over paired seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def make_figures(groups, out):
    """All figures; returns {group name or mode: [(png file name, caption)]}."""
    figures = {}
    for mode in MODES:
        if plot_gain_vs_sparsity(groups, mode, out / f"gain-{mode}.png"):
            figures[mode] = [(f"gain-{mode}.png", f"{mode}: gain against sparsity")]
    for g in groups:
        made = figures.setdefault(g.name, [])
        if plot_curves(g, out / f"curves-{g.name}.png"):
            made.append((f"curves-{g.name}.png", "learning curves"))
        if plot_gates(g, out / f"gates-{g.name}.png"):
            made.append((f"gates-{g.name}.png", "gate per task"))
        for run in g.of("mop"):
            if g.mode == "federated" and "client_gate" in run.fed and len(run.fed["client_gate"]):
                png = f"clients-{g.name}-s{run.seed}.png"
                plot_clients(g, run, out / png)
                made.append((png, f"client gates, seed {run.seed}"))
    return figures


# ----------------------------------------------------------------------------- main


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", help=".h5 results files or directories")
    parser.add_argument("--out", required=True, help="directory for report.md and the PNGs")
    args = parser.parse_args(argv)
    try:
        runs = [read_run(p) for p in find_results(args.results)]
    except ReportError as e:
        print(f"report.py: error: {e}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    groups = make_groups(runs)
    figures = make_figures(groups, out)
    write_report(groups, figures, out, runs)
    pngs = sum(len(f) for f in figures.values())
    print(f"report.py: {len(runs)} results files, {len(groups)} settings: wrote {out / 'report.md'} and {pngs} PNGs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
