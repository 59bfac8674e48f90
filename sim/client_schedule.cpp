#include "client_schedule.h"

#include <algorithm>

#include "errors.h"
#include "seeded_random.h"

namespace mops {

int owner_rank(int client, int ranks) { return client % ranks; }

std::vector<int> clients_of_rank(int rank, int ranks, int clients) {
  std::vector<int> owned;
  for (int c = rank; c < clients; c += ranks) owned.push_back(c);
  return owned;
}

std::vector<int> active_clients(int clients, int per_round, uint64_t seed, int round) {
  MOPS_CHECK(per_round >= 1 && per_round <= clients,
             "--clients-per-round " << per_round << " is outside [1, " << clients << "] (the number of clients)");
  SeededRandom random(derived_seed(seed, 0x5A3D'0000'0000ULL + uint64_t(round)));
  std::vector<int> all(clients);
  for (int c = 0; c < clients; ++c) all[c] = c;
  random.shuffle_front(all, size_t(per_round));
  std::vector<int> chosen(all.begin(), all.begin() + per_round);
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

uint64_t client_round_seed(uint64_t seed, int client, int round) {
  return derived_seed(derived_seed(seed, 0xC11E'0000'0000ULL + uint64_t(client)), uint64_t(round));
}

}  // namespace mops
