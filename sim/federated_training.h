// The federated round loop: MoPs (or FedPrompt, the prompt baseline) trained with FedAvg over
// simulated clients, the clients multiplexed over the ranks of a Communicator.
//
// Each round r (1-based), on every rank:
//   1. the active clients of r (client_schedule.h), the same list on every rank;
//   2. each active client this rank owns starts from the global state, trains its local steps
//      (a fresh Adam; batches in an order keyed by (seed, client, r)), and is added to the
//      rank's FedAvg buffer with its example count, next to its metrics (mean gate, examples,
//      mean loss) in its slot of the round;
//   3. a barrier (the time there is waiting for the slowest rank), then one allreduce_sum of
//      [FedAvg sums | total examples | A slots x (E + 2) metrics] (the time there is moving
//      data): every rank ends the round with the same global state, and rank 0 with every
//      client's metrics;
//   4. rank 0 evaluates the global state on the test split every eval_every rounds (and in the
//      last), and the observer gets the round (and a checkpoint every checkpoint_every rounds).
// Only prompt and gate values, example counts and metrics cross ranks, never text, token ids or
// activations. The result depends on the seed alone, not on the number of ranks (fedavg.h).
//
// Letters: A active clients per round, E experts, T tasks.
#pragma once
#include <vector>

#include "communicator.h"
#include "prompt_training.h"
#include "results_file.h"

namespace mops {

struct FederatedOptions {
  int rounds = 20;
  int clients_per_round = 10;  // A
  TrainOptions local;          // steps = local steps per round; lr, gate_lr, batch_size, eval_batch_size
  int eval_every = 5;          // rounds between test evaluations (and the last round)
  int checkpoint_every = 5;    // rounds between checkpoints (and the last round)
  uint64_t seed = 0;
};

// One client's training data, held only by the rank that owns the client.
struct ClientData {
  int id = 0;
  std::vector<TokenizedExample> train;
};

struct RoundOutcome {
  RoundRecord record;                              // what /fed gets; ppl NaN unless evaluated
  const PromptEvaluation* evaluation = nullptr;    // rank 0, evaluation rounds only
  bool checkpoint = false;                         // the global state is to be saved now
  double mean_loss = 0;                            // example-weighted over the active clients
};

class RoundObserver {
 public:
  virtual ~RoundObserver() = default;
  // Called on every rank after each round; `global` is the state after the round's FedAvg.
  virtual void on_round(const RoundOutcome& outcome, PromptState& global) = 0;
};

// Runs rounds first_round..options.rounds. `clients` are this rank's clients (client_schedule.h);
// `test` is needed on rank 0 only. The global state must be the same on every rank on entry.
void run_federated(Llama& backbone, PromptState& global, const std::vector<ClientData>& clients, int total_clients,
                   const std::vector<TokenizedExample>& test, const std::vector<std::string>& tasks,
                   const FederatedOptions& options, int first_round, Communicator& comm, RoundObserver& observer);

// Copies every tensor of rank `root`'s state (P0, mid prompts, gate) to all ranks.
void broadcast_state(Communicator& comm, PromptState& state, int root);
// Copies rank `root`'s `tensor` (of the same shape and dtype on every rank) to all ranks; a GPU
// tensor crosses through host memory unless the communicator takes device memory (nccl).
void broadcast_tensor(Communicator& comm, torch::Tensor& tensor, int root);

}  // namespace mops
