#!/usr/bin/env python3
"""Checks a MoPs results file (schema "mops-results/1", DESIGN.md section 4) the way an
analysis script reads it: plain h5py.File(path, "r"), no SWMR, also while a run writes it.

usage: check_results_file.py RESULTS.h5
Prints one summary line and exits 0 when the schema attributes are there and every dataset
has the shape the schema gives it; prints what is wrong to stderr and exits 1 otherwise.
Letters: S train rows, V evaluations, R rounds, T tasks, E experts, P prompts per expert,
A active clients.
"""
import json
import sys

import h5py
import numpy as np


class Invalid(Exception):
    pass


def require(condition, message):
    if not condition:
        raise Invalid(message)


def dataset(f, name, shape, kind):
    """The dataset NAME after checking its shape (None = any length) and dtype kind."""
    require(name in f, f"missing dataset /{name}")
    d = f[name]
    require(isinstance(d, h5py.Dataset), f"/{name} is not a dataset")
    require(len(d.shape) == len(shape) and all(w is None or w == s for s, w in zip(d.shape, shape)),
            f"/{name} has shape {d.shape}, expected {tuple('n' if w is None else w for w in shape)}")
    require(d.dtype.kind in kind, f"/{name} has dtype {d.dtype}, expected kind {kind}")
    return d


def series_length(f, series):
    """The common number of rows of several (name, row shape, dtype kind) series."""
    lengths = {name: dataset(f, name, (None,) + row, kind).shape[0] for name, row, kind in series}
    require(len(set(lengths.values())) == 1, f"series of different lengths: {lengths}")
    return next(iter(lengths.values()))


def check(f):
    attrs = f.attrs
    for name in ("schema", "config", "method", "mode", "held_out_split", "seed", "git_commit"):
        require(name in attrs, f"missing root attribute '{name}'")
    require(attrs["schema"] == "mops-results/1", f"schema is {attrs['schema']!r}")
    json.loads(attrs["config"])
    if "references" in attrs:  # written once the run's start state is evaluated
        references = json.loads(attrs["references"])
        for name in ("p0_only", "start"):
            require(name in references and "overall" in references[name], f"references lack {name}.overall")
    method, mode = attrs["method"], attrs["mode"]
    require(method in ("mop", "prompt", "fedprompt", "lora", "ia3", "prefix", "mpt"), f"unknown method {method!r}")
    require(mode in ("centralized", "federated"), f"unknown mode {mode!r}")
    require(attrs["held_out_split"] in ("test", "validation"), f"unknown held_out_split {attrs['held_out_split']!r}")
    require(np.issubdtype(np.asarray(attrs["seed"]).dtype, np.integer), "seed is not an integer")

    T = dataset(f, "tasks", (None,), "OS").shape[0]
    require(T > 0, "no tasks")
    E, P = (int(v) for v in dataset(f, "experts", (2,), "iu")[()])
    gate = method == "mop"

    S = series_length(f, [("train/step", (), "i"), ("train/loss", (), "f")]
                      + ([("train/gate_load", (E,), "f"), ("train/gate_entropy", (), "f")]
                         if gate and mode == "centralized" else []))
    V = series_length(f, [("eval/step", (), "i"), ("eval/ppl", (T,), "f"), ("eval/ppl_all", (), "f")]
                      + ([("gate/by_task", (T, E), "f"), ("gate/entropy", (T,), "f"),
                          ("gate/experts_used", (T,), "f")] if gate else []))
    summary = f"ok: method {method}, mode {mode}, T={T} E={E} P={P} S={S} V={V}"
    if mode == "federated":
        A = dataset(f, "fed/clients", (None, None), "i").shape[1]
        R = series_length(f, [("fed/round", (), "i"), ("fed/ppl", (T,), "f"), ("fed/clients", (A,), "i"),
                              ("fed/client_examples", (A,), "i"), ("fed/client_loss", (A,), "f"),
                              ("fed/bytes_reduced", (), "f"), ("fed/round_seconds", (), "f"),
                              ("fed/comm_seconds", (), "f"), ("fed/wait_seconds", (), "f")]
                          + ([("fed/client_gate", (A, E), "f")] if gate else []))
        summary += f" R={R} A={A}"
    states = []
    if "state" in f:
        f["state"].visititems(lambda name, obj: states.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in states:
            require(f["state"][name].dtype == np.float32, f"/state/{name} is not float32")
    return summary + f", state: {' '.join(states) or 'none'}"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    try:
        with h5py.File(path, "r") as f:
            print(check(f))
    except (Invalid, OSError, KeyError, ValueError) as error:
        print(f"{path}: not a valid results file: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
