// Federated client partitioning: splits the training records over simulated clients with
// skewed sizes and skewed task mixes, the same way on every machine for the same seed.
//
// Algorithm (n records, C clients, T tasks):
//  1. Client sizes. A seeded random ranking gives client c the rank r_c in 1..C and the weight
//     r_c^(-size_exponent). Sizes are proportional to the weights and sum to n, with every
//     client raised to min_examples: clients whose proportional share falls below the minimum
//     are pinned to it and the rest is shared among the others (repeated until stable); the
//     shares are rounded by largest remainder, so they sum to exactly n.
//  2. Task mix per client: a Dirichlet(alpha, ..., alpha) draw over the T tasks (kDirichlet),
//     uniform over a random subset of tasks_per_client tasks (kPathological), or the global
//     task proportions (kIid).
//  3. Assignment. Each task's records are shuffled into a pool. Clients are served in a seeded
//     random order: a client's desired count per task is size * mix rounded by largest
//     remainder; it takes what its tasks' pools still hold, then fills any shortfall from the
//     tasks it weights most in its mix (ties: the task with most records left), then from the
//     other tasks with most records left. Sizes sum to n, so every client gets exactly its
//     size and every record lands on exactly one client.
//
// Randomness comes from an explicit generator (Xoshiro256 of seeded_random.h: SplitMix64
// seeding xoshiro256**) with its own shuffles and Gamma/normal samplers, never from
// std::*_distribution or std::shuffle, whose algorithms differ between standard libraries.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mops {

enum class PartitionScheme { kDirichlet, kPathological, kIid };

struct PartitionOptions {
  int clients = 100;
  PartitionScheme scheme = PartitionScheme::kDirichlet;
  double alpha = 0.1;          // Dirichlet concentration over tasks per client (smaller = more skewed)
  int tasks_per_client = 2;    // pathological: each client draws from exactly this many tasks (<= number of tasks)
  double size_exponent = 1.0;  // client sizes ~ power law: size_c proportional to (rank_c)^(-exponent); 0 = equal sizes
  int min_examples = 5;        // every client gets at least this many records
  uint64_t seed = 0;
};

// "dirichlet" | "pathological" | "iid"; anything else throws an error listing these.
PartitionScheme parse_partition_scheme(const std::string& name);

struct Partition {
  std::vector<std::vector<size_t>> clients;  // record indices of each client, ascending
};

// task_of_record[i] = task index (0..num_tasks-1) of training record i. Every record lands on
// exactly one client. Throws mops::Error on options outside their ranges (see the checks).
Partition partition_records(const std::vector<int>& task_of_record, int num_tasks,
                            const PartitionOptions& options);

// Table with one row per client (client id, size, records per task) and a total row.
std::string partition_table(const Partition& partition, const std::vector<int>& task_of_record,
                            const std::vector<std::string>& task_names);

}  // namespace mops
