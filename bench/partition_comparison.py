#!/usr/bin/env python3
"""mops' client partition against flwr-datasets' DirichletPartitioner with the same alpha (issue 19).

    partition_comparison.py --data CLIENTS.jsonl [--alpha 0.1] [--seed 0] [--out FILE.json]

CLIENTS.jsonl is `mops data export --clients N ...`: its training lines carry the client mops
gives them (the partition of `mops federate` with the same options). The same training examples'
tasks go to flwr-datasets' DirichletPartitioner(num_partitions=N, partition_by="task", alpha),
first with min_partition_size = --min-size (mops' --min-client-examples, 5) and, when that fails
(DirichletPartitioner gives up after 10 draws), with 0. Printed per partition: client sizes
(min, median, max, empty clients), how many tasks a client holds, the share of its largest task,
its effective number of tasks exp(H) of its task mix, and the task mix's distance from the
population's (total variation). The two schemes differ by design: mops draws one Dirichlet over
the T tasks per client with power-law client sizes; DirichletPartitioner draws one Dirichlet over
the N clients per task (Yurochkin et al. 2019), so alpha means different things in each.
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peft_loop  # noqa: E402  (the export reader; imports no torch)


def read_training_tasks_and_clients(path):
    """(tasks, clients, task names) of the export's training lines (peft_loop.read_export, which
    names the file and line of a malformed one)."""
    try:
        export = peft_loop.read_export(path)
    except (OSError, ValueError) as error:
        sys.exit(str(error))
    if export.clients is None:
        sys.exit(f"{path}: no clients; export with `mops data export --clients N`")
    tasks = np.array([e.task_id for e in export.train])
    clients = np.array([e.client for e in export.train])
    return tasks, clients, [export.tasks[t] for t in sorted(export.tasks)]


def counts_per_client(tasks, clients, num_clients, num_tasks):
    """(C, T) examples per client and task."""
    counts = np.zeros((num_clients, num_tasks), dtype=np.int64)
    np.add.at(counts, (clients, tasks), 1)
    return counts


def statistics(counts):
    """The table's figures for a (C, T) count matrix."""
    sizes = counts.sum(1)
    held = sizes > 0
    mix = counts[held] / sizes[held, None]  # (C', T)
    population = counts.sum(0) / counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(mix > 0, mix * np.log(mix), 0).sum(1)
    return {
        "clients": int(len(sizes)),
        "empty_clients": int((~held).sum()),
        "size_min": int(sizes.min()),
        "size_median": float(np.median(sizes)),
        "size_max": int(sizes.max()),
        "tasks_per_client_mean": float((counts[held] > 0).sum(1).mean()),
        "largest_task_share_mean": float(mix.max(1).mean()),
        "effective_tasks_mean": float(np.exp(entropy).mean()),
        "total_variation_from_population_mean": float(0.5 * np.abs(mix - population).sum(1).mean()),
    }


def flower_counts(tasks, num_clients, num_tasks, alpha, seed, min_size):
    """DirichletPartitioner's (C, T) counts, or None with the reason when it gives up."""
    import datasets
    from flwr_datasets.partitioner import DirichletPartitioner

    partitioner = DirichletPartitioner(num_partitions=num_clients, partition_by="task", alpha=alpha,
                                       min_partition_size=min_size, self_balancing=False, seed=seed)
    partitioner.dataset = datasets.Dataset.from_dict({"task": tasks.tolist()})
    counts = np.zeros((num_clients, num_tasks), dtype=np.int64)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for c in range(num_clients):
                np.add.at(counts[c], np.array(partitioner.load_partition(c)["task"], dtype=np.int64), 1)
    except ValueError as error:
        return None, str(error)
    return counts, ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="`mops data export --clients N` JSON Lines")
    parser.add_argument("--alpha", type=float, default=0.1, help="the Dirichlet concentration mops used (0.1)")
    parser.add_argument("--seed", type=int, default=0, help="DirichletPartitioner's seed")
    parser.add_argument("--min-size", type=int, default=5, help="min_partition_size to try first (mops' 5)")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    if not args.alpha > 0:
        sys.exit(f"--alpha {args.alpha}: must be > 0")
    if args.min_size < 0:
        sys.exit(f"--min-size {args.min_size}: must be >= 0")
    if args.out and os.path.exists(args.out):
        sys.exit(f"--out {args.out} exists already; remove it first")
    tasks, clients, names = read_training_tasks_and_clients(args.data)
    C, T = int(clients.max()) + 1, len(names)
    rows = {"mops (per-client Dirichlet over tasks, power-law sizes)": statistics(counts_per_client(tasks, clients, C, T))}
    notes = []
    for min_size in dict.fromkeys([args.min_size, 0]):
        counts, failure = flower_counts(tasks, C, T, args.alpha, args.seed, min_size)
        if counts is None:
            notes.append(f"DirichletPartitioner(min_partition_size={min_size}) failed: {failure}")
            continue
        rows[f"flwr-datasets DirichletPartitioner (per-task Dirichlet over clients, min size {min_size})"] = statistics(counts)
        break
    import flwr_datasets

    print(f"{len(tasks)} training examples of {T} tasks over {C} clients, alpha {args.alpha}; "
          f"flwr-datasets {flwr_datasets.__version__}")
    header = ["partition", "empty", "size min/median/max", "tasks held", "largest task", "exp(H)", "TV from all"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, s in rows.items():
        print(f"| {name} | {s['empty_clients']} | {s['size_min']} / {s['size_median']:g} / {s['size_max']} | "
              f"{s['tasks_per_client_mean']:.2f} | {s['largest_task_share_mean']:.3f} | {s['effective_tasks_mean']:.2f} | "
              f"{s['total_variation_from_population_mean']:.3f} |")
    for note in notes:
        print(note)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"alpha": args.alpha, "seed": args.seed, "flwr_datasets": flwr_datasets.__version__,
                       "examples": int(len(tasks)), "tasks": names, "partitions": rows, "notes": notes}, f, indent=1)
    return 0 if len(rows) > 1 else 1


if __name__ == "__main__":
    sys.exit(main())
