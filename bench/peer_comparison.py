#!/usr/bin/env python3
"""mops against what users would run instead, on the same model, data, batch size and steps (issue 19).

    bench/peer_comparison.py --model M.safetensors --work DIR [--steps 20000] [--rounds 10] ...

Runs, one at a time, each with --threads (1) per process and OMP_NUM_THREADS to match:
  setup        mops convert --to hf (DIR/hf), mops data export (DIR/data.jsonl, and with the
               clients DIR/clients.jsonl)
  centralized  mops train --method prompt and --method lora, against bench/peft_train.py
               (PEFT prompt tuning with E x P virtual tokens, PEFT LoRA on the same layers and
               matrices) for --steps steps of batch --batch-size
  federated    mops federate --method fedprompt on 1 and on 2 MPI ranks, against
               bench/flower_fedprompt.py (Flower's simulation engine, --parallel-clients
               actors) on the same 100-client partition, --clients-per-round, --local-steps,
               --rounds
  partition    bench/partition_comparison.py: mops' partition against flwr-datasets'
               DirichletPartitioner with the same alpha
and prints the tables (Markdown) that BENCHMARKS.md holds, writing them with every figure to
DIR/peers.json. Peak memory is the largest resident set of the whole process tree (mpirun and its
ranks; Flower's driver, Ray and its actors), sampled every 0.1 s. Wall time is the process's
from start to exit. A step whose result exists in DIR is not run again (its measurement is kept
in DIR/STEP.measure.json, with its command): a killed benchmark goes on where it stopped; a
result of other settings is refused; --fresh starts over.
Settings: the paper's optimizer and length for the centralized runs (Adam 1e-3, batch 1, 20 000
steps), the main job's federated setting (100 clients, Dirichlet(0.1), 10 per round, 250 local
steps, 10 rounds); evaluation only at the end.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import peft_loop  # noqa: E402  (the export reader; imports no torch)


def tree_rss(process):
    """Resident bytes of `process` and all its descendants (0 for those already gone)."""
    total = 0
    for p in [process] + process.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measured_run(name, command, work, env):
    """Runs `command` (its output to DIR/NAME.log); returns {wall_seconds, peak_rss_mib} (names no
    peer's JSON uses, so the two merge into one row)."""
    log_path = os.path.join(work, name + ".log")
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(command)}", file=sys.stderr, flush=True)
    with open(log_path, "w") as log:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        process = psutil.Process(child.pid)
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                try:
                    peak[0] = max(peak[0], tree_rss(process))
                except psutil.Error:
                    pass
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = child.wait()
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    if code != 0:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        sys.exit(f"{name} failed (exit {code}); the end of {log_path}:\n{tail}")
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {seconds:.1f} s, peak {peak[0] / 2**20:.0f} MiB", file=sys.stderr,
          flush=True)
    return {"wall_seconds": seconds, "peak_rss_mib": peak[0] / 2**20}


def step(name, outputs, command, work, env):
    """Runs a step unless its outputs and measurement exist; returns the measurement."""
    measure_path = os.path.join(work, name + ".measure.json")
    if os.path.exists(measure_path) and all(os.path.exists(o) for o in outputs):
        with open(measure_path) as f:
            earlier = json.load(f)
        if earlier.get("command") != command:
            sys.exit(f"{work} holds a {name} result of other settings ({measure_path}: {' '.join(earlier.get('command', []))}); "
                     f"give another --work, or --fresh to start over")
        print(f"{name}: kept from an earlier run ({measure_path})", file=sys.stderr)
        return earlier
    for o in outputs:
        if os.path.isdir(o):
            shutil.rmtree(o)
        elif os.path.exists(o):
            os.remove(o)
    measure = measured_run(name, command, work, env)
    measure["command"] = command
    with open(measure_path, "w") as f:
        json.dump(measure, f, indent=1)
    return measure


def mops_results(path):
    """A results file's final overall and per-task perplexity, trained parameters, main-loop
    seconds and tokens/s (centralized) or round seconds (federated)."""
    import h5py

    with h5py.File(path, "r") as f:
        tasks = [t.decode() if isinstance(t, bytes) else t for t in f["/tasks"][()]]
        out = {"ppl_overall": float(f["/eval/ppl_all"][-1]),
               "ppl": dict(zip(tasks, map(float, f["/eval/ppl"][-1]))),
               "trainable_parameters": int(f.attrs["trainable_parameters"])}
        if "main_loop_seconds" in f.attrs:
            out["main_loop_seconds"] = float(f.attrs["main_loop_seconds"])
            out["tokens_per_second"] = float(f.attrs["tokens_per_second"])
        if "/fed/round_seconds" in f:
            out["round_seconds"] = [float(s) for s in f["/fed/round_seconds"][()]]
    return out


def read_json(path):
    with open(path) as f:
        return json.load(f)


def mops_binary(args):
    path = args.mops or os.path.join(ROOT, os.environ.get("MOPS_BUILD_DIR", "build"), "mops")
    if not os.access(path, os.X_OK):
        sys.exit(f"--mops {path}: no mops binary there; build it (scripts/build.sh) or give --mops PATH")
    return path


def data_options(args):
    return ["--data", "skills7", "--samples-per-source", "1000000", "--data-seed", str(args.data_seed)]


def run_setup(args, work, env, mops):
    hf = os.path.join(work, "hf")
    step("convert", [hf], [mops, "convert", "--model", args.model, "--to", "hf", "--out", hf,
                           "--tokenizer", args.tokenizer], work, env)
    export = [mops, "data", "export", *data_options(args), "--tokenizer", args.tokenizer, "--max-tokens", "431"]
    step("export", [os.path.join(work, "data.jsonl")], export + ["--out", os.path.join(work, "data.jsonl")], work, env)
    step("export_clients", [os.path.join(work, "clients.jsonl")],
         export + ["--clients", str(args.clients), "--alpha", str(args.alpha),
                   "--out", os.path.join(work, "clients.jsonl")], work, env)


def common_mops(args):
    return ["--model", args.model, "--tokenizer", args.tokenizer, *data_options(args), "--seed", str(args.seed),
            "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--lr", str(args.lr)]


def common_peft(args, work, script, data):
    return [sys.executable, os.path.join(HERE, script), "--model", os.path.join(work, "hf"),
            "--data", os.path.join(work, data), "--seed", str(args.seed), "--threads", str(args.threads),
            "--batch-size", str(args.batch_size), "--lr", str(args.lr)]


def run_centralized(args, work, env, mops):
    rows = {}
    for method in ("prompt", "lora"):
        out = os.path.join(work, f"mops-{method}.h5")
        measure = step(f"mops_train_{method}", [out],
                       [mops, "train", "--method", method, *common_mops(args), "--steps", str(args.steps),
                        "--eval-every", str(args.steps), "--out", out], work, env)
        rows[f"mops {method}"] = {**measure, **mops_results(out)}
        out = os.path.join(work, f"peft-{method}.json")
        command = common_peft(args, work, "peft_train.py", "data.jsonl")
        measure = step(f"peft_{method}", [out], command + ["--method", method, "--steps", str(args.steps),
                                                           "--out", out], work, env)
        rows[f"peft {method}"] = {**measure, **read_json(out)}
    return rows


def check_same_partition(results_path, export_path):
    """Stops unless the export's examples per client and task are the results file's /fed/partition:
    Flower then trains on the very clients mops did."""
    import h5py
    import numpy as np

    with h5py.File(results_path, "r") as f:
        mops_counts = f["/fed/partition"][()]
    counts = np.zeros_like(mops_counts)
    for e in peft_loop.read_export(export_path).train:
        counts[e.client, e.task_id] += 1
    if not np.array_equal(counts, mops_counts):
        sys.exit(f"{export_path}: its clients differ from {results_path}'s /fed/partition "
                 f"({int((counts != mops_counts).sum())} of {counts.size} counts); export with the run's options")
    print(f"{export_path}: the same {counts.shape[0]} clients as {results_path}'s /fed/partition", file=sys.stderr)


def run_federated(args, work, env, mops):
    rows = {}
    federate = ["federate", "--method", "fedprompt", *common_mops(args), "--clients", str(args.clients),
                "--alpha", str(args.alpha), "--clients-per-round", str(args.clients_per_round),
                "--local-steps", str(args.local_steps), "--rounds", str(args.rounds), "--eval-every", str(args.rounds)]
    mpirun = ["mpirun", "--oversubscribe", "--bind-to", "none", "-x", "OMP_NUM_THREADS"]
    for ranks in (1, 2):
        out = os.path.join(work, f"mops-fed-np{ranks}.h5")
        command = [mops, *federate, "--out", out] if ranks == 1 else [*mpirun, "-np", "2", mops, *federate, "--out", out]
        measure = step(f"mops_federate_np{ranks}", [out], command, work, env)
        rows[f"mops federate, {ranks} rank{'s' if ranks > 1 else ''}"] = {**measure, **mops_results(out)}
        check_same_partition(out, os.path.join(work, "clients.jsonl"))
    out = os.path.join(work, "flower-fedprompt.json")
    command = common_peft(args, work, "flower_fedprompt.py", "clients.jsonl")
    command += ["--rounds", str(args.rounds), "--clients-per-round", str(args.clients_per_round),
                "--local-steps", str(args.local_steps), "--parallel-clients", str(args.parallel_clients), "--out", out]
    measure = step("flower_fedprompt", [out], command, work, env)
    rows[f"Flower + PEFT, {args.parallel_clients} actors"] = {**measure, **read_json(out)}
    return rows


def run_partition(args, work, env):
    out = os.path.join(work, "partition.json")
    step("partition", [out], [sys.executable, os.path.join(HERE, "partition_comparison.py"), "--data",
                              os.path.join(work, "clients.jsonl"), "--alpha", str(args.alpha), "--out", out], work, env)
    with open(os.path.join(work, "partition.log")) as f:
        return read_json(out), f.read()


def overall_perplexity(row):
    """A row's final overall test perplexity: mops' from its results file, a peer's from its JSON."""
    return row["ppl_overall"] if "ppl_overall" in row else row["test_perplexity"]["overall"]


def centralized_table(rows, steps):
    lines = [f"| run ({steps} steps) | steps/s | tokens/s | training loop + final eval (s) | wall (s) | peak RSS (MiB) "
             "| trained | test ppl |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        # Both loops' times include their final evaluation (mops' main_loop_seconds does; a
        # peft_train.py JSON's `seconds` is its loop and final evaluation).
        if name.startswith("mops"):
            loop, tokens_per_second = r["main_loop_seconds"], r["tokens_per_second"]
        else:
            loop = r["seconds"]
            tokens_per_second = r["train_tokens"] / loop
        lines.append(f"| {name} | {steps / loop:.1f} | {tokens_per_second:,.0f} | {loop:.1f} | {r['wall_seconds']:.1f} | "
                     f"{r['peak_rss_mib']:.0f} | {r['trainable_parameters']:,} | {overall_perplexity(r):.3f} |")
    return "\n".join(lines)


def federated_table(rows, rounds):
    lines = [f"| run ({rounds} rounds) | s/round (median) | all rounds (s) | wall (s) | peak RSS (MiB) | test ppl |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        rounds_s = sorted(r["round_seconds"])
        lines.append(f"| {name} | {rounds_s[len(rounds_s) // 2]:.1f} | {sum(rounds_s):.1f} | {r['wall_seconds']:.1f} | "
                     f"{r['peak_rss_mib']:.0f} | {overall_perplexity(r):.3f} |")
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", required=True, help="the model mops trains on (its .safetensors)")
    parser.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "skills7-tokenizer.model"),
                        help="the model's SentencePiece .model (models/skills7-tokenizer.model)")
    parser.add_argument("--work", required=True, help="directory for every output (made if missing)")
    parser.add_argument("--mops", help="the mops binary (default: $MOPS_BUILD_DIR/mops, else build/mops)")
    parser.add_argument("--parts", default="centralized,federated,partition",
                        help="comma list of centralized, federated, partition")
    parser.add_argument("--steps", type=int, default=20000, help="centralized steps (20000)")
    parser.add_argument("--batch-size", type=int, default=1, help="examples per step, every run (1)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate, every run (1e-3)")
    parser.add_argument("--clients", type=int, default=100, help="federated clients (100)")
    parser.add_argument("--alpha", type=float, default=0.1, help="the partition's Dirichlet concentration (0.1)")
    parser.add_argument("--clients-per-round", type=int, default=10, help="clients sampled per round (10)")
    parser.add_argument("--local-steps", type=int, default=250, help="each sampled client's steps per round (250)")
    parser.add_argument("--rounds", type=int, default=10, help="federated rounds (10)")
    parser.add_argument("--parallel-clients", type=int, default=2, help="Flower's concurrent actors (2: the cores)")
    parser.add_argument("--threads", type=int, default=1, help="threads per process (1)")
    parser.add_argument("--seed", type=int, default=1, help="training seed of every run (1)")
    parser.add_argument("--data-seed", type=int, default=0, help="mops' --data-seed: the data and the partition (0)")
    parser.add_argument("--fresh", action="store_true", help="remove DIR's earlier results first")
    args = parser.parse_args()
    for name in ("steps", "batch_size", "clients", "clients_per_round", "local_steps", "rounds", "parallel_clients",
                 "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= 1")
    for name in ("lr", "alpha"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name} {getattr(args, name)}: must be > 0")
    if args.seed < 0 or args.data_seed < 0:
        parser.error("--seed and --data-seed must be >= 0")
    if not 1 <= args.clients_per_round <= args.clients:
        parser.error(f"--clients-per-round {args.clients_per_round}: must be in [1, --clients {args.clients}]")
    parts = set(args.parts.split(","))
    if not parts or parts - {"centralized", "federated", "partition"}:
        parser.error(f"--parts {args.parts}: a comma list of centralized, federated, partition")
    for path, option in ((args.model, "--model"), (args.tokenizer, "--tokenizer")):
        if not os.path.isfile(path):
            parser.error(f"{option} {path}: not a file")
    args.model, args.tokenizer = os.path.abspath(args.model), os.path.abspath(args.tokenizer)
    args.parts = parts
    return args


def main():
    args = parse_args()
    mops = mops_binary(args)
    work = os.path.abspath(args.work)
    if args.fresh and os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    run_setup(args, work, env, mops)
    report = {"settings": {k: v for k, v in vars(args).items() if k != "parts"}, "machine": {
        "cores": os.cpu_count(), "python": sys.version.split()[0]}}
    if "centralized" in args.parts:
        report["centralized"] = run_centralized(args, work, env, mops)
        print(centralized_table(report["centralized"], args.steps) + "\n")
    if "federated" in args.parts:
        report["federated"] = run_federated(args, work, env, mops)
        print(federated_table(report["federated"], args.rounds) + "\n")
    if "partition" in args.parts:
        report["partition"], table = run_partition(args, work, env)
        print(table)
    with open(os.path.join(work, "peers.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"every figure: {os.path.join(work, 'peers.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
