#include "federated_training.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "client_schedule.h"
#include "errors.h"
#include "fedavg.h"

namespace mops {
namespace {

// Where each part of the round's reduction buffer lives.
struct RoundLayout {
  int64_t state_values;  // N: FedAvg sums, then the total example count at [N]
  int64_t experts;       // E (0 for the baseline)
  int64_t slots;         // A
  int64_t slot_size() const { return experts + 2; }  // [gate (E) | examples | mean loss]
  int64_t slot(int64_t a) const { return state_values + 1 + a * slot_size(); }
  int64_t metrics_slot(int64_t a) const { return slot(a) - state_values; }  // in the buffer from [N] on
  int64_t size() const { return slot(slots); }
};

// What this rank's clients contribute to the round: FedAvg sums and their metric slots.
void train_active_clients(Llama& backbone, PromptState& global, PromptState& work,
                          const std::map<int, const ClientData*>& mine, const std::vector<int>& active, int round,
                          const FederatedOptions& options, const RoundLayout& layout, torch::Tensor& buffer) {
  for (size_t a = 0; a < active.size(); ++a) {
    const auto found = mine.find(active[a]);
    if (found == mine.end()) continue;
    const ClientData& client = *found->second;
    copy_averaged(global, work);
    TrainOptions local = options.local;
    local.seed = client_round_seed(options.seed, client.id, round);
    const auto trained = train_local(backbone, work, client.train, local);
    const int64_t examples = int64_t(client.train.size());
    add_client(work, examples, buffer);
    auto slot = buffer.slice(0, layout.slot(int64_t(a)), layout.slot(int64_t(a) + 1));  // (E + 2)
    if (layout.experts > 0) slot.slice(0, 0, layout.experts).copy_(trained.mean_gate);
    slot[layout.experts].fill_(double(examples));
    slot[layout.experts + 1].fill_(trained.mean_loss);
  }
}

// The round's record from the reduced buffer's metrics: its values from [N] on, in host memory.
RoundOutcome round_outcome(int round, const std::vector<int>& active, const RoundLayout& layout,
                           const double* metrics, size_t tasks) {
  RoundOutcome outcome;
  auto& r = outcome.record;
  r.round = round;
  r.ppl.assign(tasks, std::numeric_limits<double>::quiet_NaN());
  double loss_sum = 0, example_sum = 0;
  for (size_t a = 0; a < active.size(); ++a) {
    const double* slot = metrics + layout.metrics_slot(int64_t(a));
    r.clients.push_back(active[a]);
    r.client_gate.insert(r.client_gate.end(), slot, slot + layout.experts);
    r.client_examples.push_back(int64_t(slot[layout.experts]));
    r.client_loss.push_back(slot[layout.experts + 1]);
    loss_sum += slot[layout.experts] * slot[layout.experts + 1];
    example_sum += slot[layout.experts];
  }
  outcome.mean_loss = loss_sum / example_sum;
  return outcome;
}

}  // namespace

void run_federated(Llama& backbone, PromptState& global, const std::vector<ClientData>& clients, int total_clients,
                   const std::vector<TokenizedExample>& test, const std::vector<std::string>& tasks,
                   const FederatedOptions& options, int first_round, Communicator& comm, RoundObserver& observer) {
  std::map<int, const ClientData*> mine;
  for (const auto& c : clients) {
    MOPS_CHECK(owner_rank(c.id, comm.size()) == comm.rank(), "client " << c.id << " is not owned by rank " << comm.rank());
    MOPS_CHECK(!c.train.empty(), "client " << c.id << " has no training examples");
    mine[c.id] = &c;
  }
  PromptState work(global->config(), global->backbone_config(), options.seed);
  work->to(global->first_prompts.device());
  {
    torch::NoGradGuard no_grad;
    work->first_prompts.copy_(global->first_prompts);
  }
  RoundLayout layout{averaged_values(global), global->gate ? int64_t(global->config().experts) : 0,
                     int64_t(options.clients_per_round)};
  // The reduction buffer lives where the communicator reduces: on the GPU for nccl (no copy
  // through the host), else in host memory.
  const auto buffer_device = comm.takes_device_memory() ? global->first_prompts.device() : torch::Device(torch::kCPU);
  const auto buffer_options = torch::TensorOptions().dtype(torch::kDouble).device(buffer_device);
  for (int round = first_round; round <= options.rounds; ++round) {
    const auto started = std::chrono::steady_clock::now();
    const double comm_before = comm.seconds_communicating();
    const uint64_t bytes_before = comm.bytes_reduced();
    const auto active = active_clients(total_clients, options.clients_per_round, options.seed, round);
    auto buffer = torch::zeros({layout.size()}, buffer_options);
    train_active_clients(backbone, global, work, mine, active, round, options, layout, buffer);
    // The barrier separates waiting for the slowest rank from moving the data.
    const auto arrived = std::chrono::steady_clock::now();
    comm.barrier();
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - arrived).count();
    comm.allreduce_sum(buffer.data_ptr<double>(), size_t(buffer.numel()));
    assign_average(buffer, global);

    const auto metrics = buffer.slice(0, layout.state_values).to(torch::kCPU).contiguous();  // examples, slots
    auto outcome = round_outcome(round, active, layout, metrics.data_ptr<double>(), tasks.size());
    PromptEvaluation evaluation;
    const bool last = round == options.rounds;
    if (comm.rank() == 0 && (round % options.eval_every == 0 || last)) {
      evaluation = evaluate_prompted(backbone, global, test, tasks, options.local.eval_batch_size);
      for (size_t t = 0; t < tasks.size(); ++t) outcome.record.ppl[t] = evaluation.report.tasks[t].perplexity;
      outcome.evaluation = &evaluation;
    }
    outcome.checkpoint = round % options.checkpoint_every == 0 || last;
    outcome.record.bytes_reduced = double(comm.bytes_reduced() - bytes_before);
    outcome.record.comm_seconds = comm.seconds_communicating() - comm_before;
    outcome.record.wait_seconds = waited;
    outcome.record.round_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    observer.on_round(outcome, global);
  }
}

void broadcast_state(Communicator& comm, PromptState& state, int root) {
  for (auto& t : state->parameters()) broadcast_tensor(comm, t, root);
}

void broadcast_tensor(Communicator& comm, torch::Tensor& tensor, int root) {
  torch::NoGradGuard no_grad;
  auto staged = tensor.is_cpu() || comm.takes_device_memory() ? tensor.contiguous() : tensor.to(torch::kCPU).contiguous();
  comm.broadcast(staged.data_ptr(), staged.nbytes(), root);
  if (!staged.is_same(tensor)) tensor.copy_(staged);
}

}  // namespace mops
