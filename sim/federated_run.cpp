#include "federated_run.h"

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>
#include <nlohmann/json.hpp>

#include "client_schedule.h"
#include "errors.h"
#include "federated_resume.h"
#include "federated_training.h"
#include "progress.h"
#include "prompt_state_io.h"
#include "run_start.h"
#include "stable_hash.h"

namespace mops {

const char* federated_method_name(PromptMethod method) {
  return method == PromptMethod::kPrompt ? "fedprompt" : method_name(method);
}

void check_ranks_agree(Communicator& comm, const std::string& config_json) {
  const uint64_t mine = stable_hash(config_json, 0);
  uint64_t root = mine;
  comm.broadcast(&root, sizeof root, 0);
  double differing = mine == root ? 0 : 1;
  comm.allreduce_sum(&differing, 1);
  MOPS_CHECK(differing == 0, int(differing) << " of " << comm.size()
                                            << " ranks started with options different from rank 0's (config hash "
                                            << std::hex << mine << " here, " << root << " on rank 0); start every "
                                            << "rank with the same command line and config file");
}

namespace {

// What every method of the run shares: the settings, the model and data, the partition, this
// rank's clients, P0 and the references.
struct FederatedSetup {
  const PromptRunSettings& prompts;
  const FederatedRunSettings& federated;
  Llama& model;
  const TokenizedSplit& data;
  const std::string& compression;
  Partition partition;
  std::vector<ClientData> my_clients;
  torch::Tensor p0;            // (K0, C), the same on every rank
  nlohmann::json references;   // rank 0: {"p0_only": ...}
};

// The partition is of the tokenized examples: tokenizing drops records longer than the model
// allows, so record and example indices differ.
void place_clients(FederatedSetup& s, const Communicator& comm) {
  std::vector<int> task_of_example;
  for (const auto& e : s.data.train) task_of_example.push_back(e.task);
  s.partition = partition_records(task_of_example, int(s.data.tasks.size()), s.federated.partition);
  for (int c : clients_of_rank(comm.rank(), comm.size(), int(s.partition.clients.size()))) {
    ClientData client{c, {}};
    for (size_t example : s.partition.clients[c]) client.train.push_back(s.data.train[example]);
    s.my_clients.push_back(std::move(client));
  }
}

// P0: pretrained (or read) on rank 0 and sent to all; the same P0 for both methods. Rank 0
// returns the reference "P0 only".
EvaluationReport share_first_prompts(FederatedSetup& s, Communicator& comm) {
  EvaluationReport p0_only;
  int64_t p0_count = 0;
  if (comm.rank() == 0) {
    s.p0 = load_or_pretrain_first_prompts(s.prompts.p0, s.prompts.seed, s.model, s.data.train);
    p0_only = evaluate_p0_only(s.model, s.p0, s.data.test, s.data.tasks, s.prompts.train.eval_batch_size);
    s.references["p0_only"] = perplexity_json(p0_only);
    p0_count = s.p0.size(0);
  }
  comm.broadcast(&p0_count, sizeof p0_count, 0);
  if (comm.rank() != 0) s.p0 = torch::zeros({p0_count, int64_t(s.model->config().dim)}, s.model->device());
  broadcast_tensor(comm, s.p0, 0);
  return p0_only;
}

FederatedOptions federated_options(const FederatedSetup& s) {
  FederatedOptions o;
  o.rounds = s.federated.rounds;
  o.clients_per_round = s.federated.clients_per_round;
  o.local = s.prompts.train;
  o.local.steps = s.federated.local_steps;
  o.eval_every = s.federated.eval_every;
  o.checkpoint_every = s.federated.checkpoint_every;
  o.seed = s.prompts.seed;
  return o;
}

// An /eval row read back from a results file, as a report.
EvaluationReport report_from_row(const EvalRow& row, const std::vector<std::string>& tasks) {
  EvaluationReport report;
  for (size_t t = 0; t < tasks.size(); ++t) {
    TaskMetrics m;
    m.task = tasks[t];
    m.perplexity = row.ppl[t];
    report.tasks.push_back(m);
  }
  report.overall.task = "all";
  report.overall.perplexity = row.ppl_all;
  return report;
}

// Rank 0's results file, progress line and checkpoints.
class FederatedObserver : public RoundObserver {
 public:
  // `last`: the latest evaluation before first_round (a resumed run's), or an empty report.
  // held_out: the split the evaluations are on ("test" | "validation")
  FederatedObserver(int rounds, int first_round, const std::string& label, const std::string& held_out,
                    ResultsFile* results, EvaluationReport last)
      : progress_(label, rounds - first_round + 1, "rounds", std::cerr),
        held_out_(held_out),
        first_round_(first_round),
        results_(results),
        last_ppl_(last.overall.perplexity),
        final_(std::move(last)) {}

  void on_round(const RoundOutcome& outcome, PromptState& global) override {
    if (!results_) return;
    const auto& r = outcome.record;
    results_->begin_batch();
    results_->append_round(r);
    results_->append_train(r.round, outcome.mean_loss);
    if (outcome.evaluation) {
      const auto& e = *outcome.evaluation;
      append_evaluation(*results_, r.round, e);
      last_ppl_ = e.report.overall.perplexity;
      final_ = e.report;
    }
    if (outcome.checkpoint) {
      write_prompt_state(*results_, global);
      results_->write_attribute("checkpoint_round", std::to_string(r.round));
    }
    results_->end_batch();
    print_progress(outcome);
  }

  void finish() { progress_.finish(); }
  const EvaluationReport& final_report() const { return final_; }

 private:
  void print_progress(const RoundOutcome& outcome) {
    const auto& r = outcome.record;
    std::ostringstream fields;
    fields << r.clients.size() << " clients | loss " << std::fixed << std::setprecision(4) << outcome.mean_loss;
    if (last_ppl_ > 0) fields << " | " << held_out_ << " ppl " << std::setprecision(3) << last_ppl_;
    fields << " | round " << std::setprecision(1) << r.round_seconds << " s (comm " << std::setprecision(3)
           << r.comm_seconds << " s, waiting " << r.wait_seconds << " s)";
    progress_.update(r.round - first_round_ + 1, fields.str());
  }

  Progress progress_;
  std::string held_out_;
  int first_round_;
  ResultsFile* results_;
  double last_ppl_ = 0;
  EvaluationReport final_;
};

// /fed/partition (C, T) training examples per client and task, /fed/client_rank (C).
void write_partition(ResultsFile& results, const FederatedSetup& s, int ranks) {
  const int64_t C = int64_t(s.partition.clients.size()), T = int64_t(s.data.tasks.size());
  std::vector<int64_t> counts(size_t(C * T), 0), owner;
  for (int64_t c = 0; c < C; ++c) {
    for (size_t example : s.partition.clients[c]) counts[c * T + s.data.train[example].task] += 1;
    owner.push_back(owner_rank(int(c), ranks));
  }
  results.write_table("partition", counts, {C, T});
  results.write_table("client_rank", owner, {C});
}

// The start state on rank 0: P0, mid prompts, gate pretraining; its references and evaluation
// in `results` (written also without gate pretraining: a resumed run copies them,
// federated_resume.h); `start` receives its overall perplexity.
PromptState fresh_state(FederatedSetup& s, PromptMethod method, ResultsFile& results, ActivationCache& cache,
                        double& start) {
  auto state = initial_prompt_state(s.prompts, method, s.model, s.p0, s.data);
  if (method == PromptMethod::kMop) {
    pretrain_gate_for_run(s.prompts, s.model, state, s.data.train, cache);
  }
  start = write_start_state(results, s.references, s.model, state, s.data.test, s.data.tasks,
                            s.prompts.train.eval_batch_size)
              .overall.perplexity;
  return state;
}

// One method from start (or from its checkpoint) to the end; rank 0 returns the final report and
// the start's.
MethodOutcome run_federated_method(FederatedSetup& s, const MethodPath& output, Communicator& comm,
                                      ActivationCache& cache) {
  const auto& [method, path] = output;
  // Rank 0 decides where to start: 1 (fresh), after the checkpoint, or nowhere (finished).
  int64_t first_round = 1;
  ResumePoint point;
  if (comm.rank() == 0 && s.federated.resume && std::filesystem::exists(path)) {
    point = read_resume_point(path, s.prompts.config_json, s.federated.resume_free_options, s.model->config());
    first_round = point.status == "finished" ? -1 : point.checkpoint_round + 1;
  }
  comm.broadcast(&first_round, sizeof first_round, 0);
  const auto last = point.evaluations.empty() ? EvaluationReport{} : report_from_row(point.evaluations.back(), s.data.tasks);
  double start = comm.rank() == 0 && !point.references.empty() ? start_perplexity(point.references)
                                                                 : std::numeric_limits<double>::quiet_NaN();
  if (first_round < 0) {
    if (comm.rank() == 0) std::cerr << path << ": finished already; its last evaluation goes into the table\n";
    return {last, start};
  }
  const auto config = method_config(s.prompts, method, int(s.p0.size(0)), int(s.data.tasks.size()), s.model->config());
  std::unique_ptr<ResultsFile> results;
  PromptState global(config, s.model->config());
  if (comm.rank() == 0) {
    results = std::make_unique<ResultsFile>(path, prompt_results_header(s.prompts, config, s.data, federated_method_name(config.method),
                                                                      s.federated.clients_per_round));
    write_partition(*results, s, comm.size());
    results->write_attribute("compression", s.compression);
    write_trainable_parameters(*results, global, federated_method_name(method));
    if (first_round > 1) {
      replay_resume_point(point, *results);
      global = point.state;
      std::cerr << path << ": resuming after round " << point.checkpoint_round << "\n";
    } else {
      global = fresh_state(s, method, *results, cache, start);
    }
    results->write_attribute("status", "running");
  }
  global->to(s.model->device());
  broadcast_state(comm, global, 0);
  auto options = federated_options(s);
  options.local.lower_cache = &cache;
  FederatedObserver observer(options.rounds, int(first_round), std::string("federate ") + federated_method_name(method),
                             s.data.held_out, results.get(), last);
  run_federated(s.model, global, s.my_clients, int(s.partition.clients.size()), s.data.test, s.data.tasks, options,
                int(first_round), comm, observer);
  if (comm.rank() == 0) {
    observer.finish();
    results->write_attribute("status", "finished");
    results->close();
    std::cerr << federated_method_name(method) << ": results in " << path << "\n" << cache.describe() << " (rank 0)\n";
  }
  return {observer.final_report(), start};
}

}  // namespace

RunReports run_federated_methods(Communicator& comm, Llama& model, const PromptRunSettings& prompts,
                                 const FederatedRunSettings& federated, const std::vector<MethodPath>& outputs,
                                 const TokenizedSplit& data, const std::string& compression) {
  FederatedSetup setup{prompts, federated, model, data, compression, {}, {}, {}, {}};
  place_clients(setup, comm);
  RunReports reports;
  reports.held_out = data.held_out;
  reports.p0_only = share_first_prompts(setup, comm);
  auto cache = make_activation_cache(prompts.activation_cache, model->device(), comm.rank() == 0);
  for (const auto& output : outputs) {
    add_method_outcome(reports, output.method, run_federated_method(setup, output, comm, *cache));
  }
  return reports;
}

}  // namespace mops
