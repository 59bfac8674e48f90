// Who trains where and when in a federated run.
//
// Placement: client c lives on rank c mod R (round robin). Client sizes follow a power law
// over a seeded random ranking (sim/partition.h), so round robin spreads large and small
// clients evenly without looking at the data.
//
// Sampling: the active clients of round r are a uniform sample without replacement of
// `per_round` of the C clients, drawn from a stream keyed by (seed, r) alone. Every rank
// computes the same list, and a resumed run draws the same clients as an uninterrupted one.
// Per-client randomness (the order of local batches) is keyed by (seed, client, round).
#pragma once
#include <cstdint>
#include <vector>

namespace mops {

int owner_rank(int client, int ranks);

// The clients rank `rank` owns, ascending.
std::vector<int> clients_of_rank(int rank, int ranks, int clients);

// Active clients of `round` (1-based), ascending; per_round in [1, clients].
std::vector<int> active_clients(int clients, int per_round, uint64_t seed, int round);

// Seed of client `client`'s local training in `round`.
uint64_t client_round_seed(uint64_t seed, int client, int round);

}  // namespace mops
