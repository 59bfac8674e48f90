// `mops federate`: MoPs and/or FedPrompt (the prompt baseline) trained with FedAvg over
// simulated clients, one MPI rank per group of clients (`mpirun -np R mops federate ...`).
// Rank 0 prepares the start state (P0, mid prompts, gate pretraining) and writes the results
// file, which is also the checkpoint (sim/federated_resume.h); every rank trains its own
// clients (sim/federated_training.h).
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "checkpoint.h"
#include "commands.h"
#include "dataset_options.h"
#include "prompt_options.h"
#include "client_schedule.h"
#include "command_start.h"
#include "communicator.h"
#include "errors.h"
#include "federated_resume.h"
#include "federated_training.h"
#include "output_files.h"
#include "progress.h"
#include "prompt_state_io.h"
#include "stable_hash.h"

namespace mops {
namespace {

// Options that may change between a run and its --resume without changing the result.
const std::vector<std::string> kResumeFreeOptions = {"resume", "overwrite", "threads", "thread-split", "comm"};

const char* federated_method_name(PromptMethod method) { return method == PromptMethod::kMop ? "mop" : "fedprompt"; }

// Every rank must run the same configuration: the ranks compare the hash of their resolved
// options with rank 0's, and all stop when any differs.
void check_ranks_agree(Communicator& comm, const CommandLine& cl) {
  const uint64_t mine = stable_hash(cl.resolved_json(), 0);
  uint64_t root = mine;
  comm.broadcast(&root, sizeof root, 0);
  double differing = mine == root ? 0 : 1;
  comm.allreduce_sum(&differing, 1);
  MOPS_CHECK(differing == 0, int(differing) << " of " << comm.size()
                                            << " ranks started with options different from rank 0's (config hash "
                                            << std::hex << mine << " here, " << root << " on rank 0); start every "
                                            << "rank with the same command line and config file");
}

// Everything the ranks share before training: model, data, partition, this rank's clients.
struct FederatedSetup {
  Llama model{nullptr};
  std::string compression;  // the results files' attribute (compression_attribute)
  InstructionDataset dataset;
  TokenizedSplit data;
  Partition partition;
  std::vector<ClientData> my_clients;
};

// The options that do not need the model: clients for every rank, A <= C, --resume xor --overwrite.
void validate_federate_options(const CommandLine& cl, const Communicator& comm) {
  const int clients = cl.get<int>("clients");
  cl.require(comm.size() <= clients, "--clients " + std::to_string(clients) + " is fewer than the " +
                                         std::to_string(comm.size()) + " ranks; every rank needs a client: start " +
                                         "fewer ranks (mpirun -np) or raise --clients");
  cl.get_int_in("clients-per-round", 1, clients);
  cl.require(!(cl.get<bool>("resume") && cl.get<bool>("overwrite")),
             "--resume continues the files in --out and --overwrite replaces them: give one of them");
}

// Rank 0's outputs: writable and locked; existing files only to --resume (at least one must
// exist then) or with --overwrite.
OutputLocks claim_federated_outputs(const CommandLine& cl, const std::vector<std::pair<PromptMethod, std::string>>& paths) {
  std::vector<std::string> files;
  for (const auto& [method, path] : paths) files.push_back(path);
  const bool resume = cl.get<bool>("resume");
  auto locks = claim_outputs("--out", files, resume || cl.get<bool>("overwrite"),
                             "add --resume to continue it, or --overwrite to replace it");
  bool any = false;
  for (const auto& file : files) any = any || std::filesystem::exists(file);
  std::string listed;
  for (const auto& file : files) listed += (listed.empty() ? "" : " nor ") + file;
  cl.require(!resume || any, "--resume: there is no checkpoint to continue (no " + listed +
                                 "); start a fresh run without --resume");
  return locks;
}

FederatedSetup load_setup(const CommandLine& cl, const Communicator& comm, LoadedModel loaded,
                          const ComputeDevice& compute) {
  FederatedSetup s;
  s.model = loaded.model;
  s.compression = compression_attribute(loaded.metadata);
  s.model->freeze_on(compute.device, compute.dtype);
  s.dataset = load_instruction_dataset(dataset_options(cl));
  const auto tokenizer = Tokenizer::load(cl.get<std::string>("tokenizer"));
  s.data = tokenize_dataset(s.dataset, tokenizer, s.model->config().max_seq_len - 1 - prompt_positions(cl));
  // The partition is of the tokenized examples: tokenizing drops records longer than the model
  // allows, so record and example indices differ.
  std::vector<int> task_of_example;
  for (const auto& e : s.data.train) task_of_example.push_back(e.task);
  s.partition = partition_clients(cl, task_of_example, int(s.dataset.tasks.size()));
  for (int c : clients_of_rank(comm.rank(), comm.size(), int(s.partition.clients.size()))) {
    ClientData client{c, {}};
    for (size_t example : s.partition.clients[c]) client.train.push_back(s.data.train[example]);
    s.my_clients.push_back(std::move(client));
  }
  return s;
}

FederatedOptions federated_options(const CommandLine& cl) {
  FederatedOptions o;
  o.rounds = cl.get<int>("rounds");
  o.clients_per_round = cl.get<int>("clients-per-round");
  o.local = optimizer_options(cl);
  o.local.steps = cl.get<int>("local-steps");
  o.eval_every = cl.get<int>("eval-every");
  o.checkpoint_every = cl.get<int>("checkpoint-every");
  o.seed = cl.seed();
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
  FederatedObserver(int rounds, int first_round, const std::string& label, ResultsFile* results,
                    EvaluationReport last)
      : progress_(label, rounds - first_round + 1, "rounds", std::cerr),
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
    if (last_ppl_ > 0) fields << " | test ppl " << std::setprecision(3) << last_ppl_;
    fields << " | round " << std::setprecision(1) << r.round_seconds << " s (comm " << std::setprecision(3)
           << r.comm_seconds << " s, waiting " << r.wait_seconds << " s)";
    progress_.update(r.round - first_round_ + 1, fields.str());
  }

  Progress progress_;
  int first_round_;
  ResultsFile* results_;
  double last_ppl_ = 0;
  EvaluationReport final_;
};

ResultsHeader results_header(const CommandLine& cl, PromptMethod method, const FederatedSetup& s,
                             const MopConfig& config) {
  ResultsHeader h;
  h.config_json = cl.resolved_json();
  h.method = federated_method_name(method);
  h.mode = "federated";
  h.seed = cl.seed();
  h.tasks = s.dataset.tasks;
  h.experts = config.experts;
  h.prompts_per_expert = config.prompts_per_expert;
  h.active_clients = cl.get<int>("clients-per-round");
  return h;
}

// /fed/partition (C, T) training examples per client and task, /fed/client_rank (C).
void write_partition(ResultsFile& results, const FederatedSetup& s, int ranks) {
  const int64_t C = int64_t(s.partition.clients.size()), T = int64_t(s.dataset.tasks.size());
  std::vector<int64_t> counts(size_t(C * T), 0), owner;
  for (int64_t c = 0; c < C; ++c) {
    for (size_t example : s.partition.clients[c]) counts[c * T + s.data.train[example].task] += 1;
    owner.push_back(owner_rank(int(c), ranks));
  }
  results.write_table("partition", counts, {C, T});
  results.write_table("client_rank", owner, {C});
}

// The start state on rank 0: P0, mid prompts, gate pretraining; its references in `results`.
PromptState fresh_state(const CommandLine& cl, PromptMethod method, FederatedSetup& s, ResultsFile& results,
                        const torch::Tensor& p0, const nlohmann::json& references, ActivationCache& cache) {
  auto state = initial_prompt_state(cl, method, s.model, p0, s.data.train);
  results.write_attribute("references", references.dump());
  if (method != PromptMethod::kMop) return state;
  if (cl.get<int>("gate-pretrain-steps") > 0) pretrain_gate_option(cl, s.model, state, s.data.train, cache);
  // Written also without pretraining: a resumed run copies it (sim/federated_resume.h).
  write_gate_after_pretraining(results, s.model, state, s.data.test, s.dataset.tasks, cl.get<int>("eval-batch-size"));
  return state;
}

// One method from start (or from its checkpoint) to the end; rank 0 returns the final report.
EvaluationReport run_federated_method(const CommandLine& cl, PromptMethod method, const std::string& path,
                                      Communicator& comm, FederatedSetup& s, const torch::Tensor& p0,
                                      const nlohmann::json& references, ActivationCache& cache) {
  const int width = s.model->config().dim;
  // Rank 0 decides where to start: 1 (fresh), after the checkpoint, or nowhere (finished).
  int64_t first_round = 1;
  ResumePoint point;
  if (comm.rank() == 0 && cl.get<bool>("resume") && std::filesystem::exists(path)) {
    point = read_resume_point(path, cl.resolved_json(), kResumeFreeOptions, width);
    first_round = point.status == "finished" ? -1 : point.checkpoint_round + 1;
  }
  comm.broadcast(&first_round, sizeof first_round, 0);
  const auto last = point.evaluations.empty() ? EvaluationReport{} : report_from_row(point.evaluations.back(), s.dataset.tasks);
  if (first_round < 0) {
    if (comm.rank() == 0) std::cerr << path << ": finished already; its last evaluation goes into the table\n";
    return last;
  }
  const auto config = mop_config(cl, method, int(p0.size(0)), s.model->config());
  std::unique_ptr<ResultsFile> results;
  PromptState global(config, width);
  if (comm.rank() == 0) {
    results = std::make_unique<ResultsFile>(path, results_header(cl, method, s, config));
    write_partition(*results, s, comm.size());
    results->write_attribute("compression", s.compression);
    if (first_round > 1) {
      replay_resume_point(point, *results);
      global = point.state;
      std::cerr << path << ": resuming after round " << point.checkpoint_round << "\n";
    } else {
      global = fresh_state(cl, method, s, *results, p0, references, cache);
    }
    results->write_attribute("status", "running");
  }
  global->to(s.model->device());
  broadcast_state(comm, global, 0);
  auto options = federated_options(cl);
  options.local.lower_cache = &cache;
  FederatedObserver observer(options.rounds, int(first_round), std::string("federate ") + federated_method_name(method),
                             results.get(), last);
  run_federated(s.model, global, s.my_clients, int(s.partition.clients.size()), s.data.test, s.dataset.tasks, options,
                int(first_round), comm, observer);
  if (comm.rank() == 0) {
    observer.finish();
    results->write_attribute("status", "finished");
    results->close();
    std::cerr << federated_method_name(method) << ": results in " << path << "\n" << cache.describe() << " (rank 0)\n";
  }
  return observer.final_report();
}

}  // namespace

int run_federate(int argc, const char* const* argv) {
  CommandLine cl("federate",
                 "Train MoPs and/or FedPrompt (the prompt baseline) with FedAvg over simulated clients, the clients "
                 "spread over MPI ranks: mpirun -np R mops federate ... Rank 0 writes the HDF5 results file, which "
                 "is also the checkpoint that --resume continues from.");
  constexpr int kMaxInt = std::numeric_limits<int>::max();
  cl.add_choice("method", "both", {"mop", "fedprompt", "both"}, "MoPs, FedPrompt, or both (FedPrompt first)");
  cl.options().add_options()
      ("model", po::value<std::string>()->required()->value_name("PATH"), "compressed checkpoint (mops prune)")
      ("tokenizer", po::value<std::string>()->required()->value_name("FILE"), "SentencePiece .model")
      ("out", po::value<std::string>()->required()->value_name("FILE.h5"),
       "results file and checkpoint (with --method both: FILE.mop.h5 and FILE.fedprompt.h5); an existing one is "
       "continued with --resume or replaced with --overwrite, never otherwise")
      ("resume", po::bool_switch(), "continue from the checkpoint in --out (a finished run is only reported)");
  cl.add_number<int>("clients", 100, Range::closed(1, 1 << 20), "simulated clients C (paper: 100)");
  cl.add_number<int>("clients-per-round", 10, Range::closed(1, 1 << 20),
                     "active clients per round A, at most C (paper: 10)");
  cl.add_number<int>("local-steps", 250, Range::closed(1, kMaxInt),
                     "local training steps per active client and round (paper: 250)");
  cl.add_number<int>("rounds", 20, Range::closed(1, kMaxInt),
                     "rounds (20 x 10 clients x 250 steps = the paper's 50 000 steps)");
  cl.add_number<int>("eval-every", 5, Range::closed(1, kMaxInt), "rounds between test evaluations (and the last round)");
  cl.add_number<int>("checkpoint-every", 5, Range::closed(1, kMaxInt), "rounds between checkpoints (and the last round)");
  cl.add_choice("comm", "auto", {"local", "mpi", "nccl", "auto"}, "the communicator (auto: mpi under mpirun/srun, else local)");
  add_prompt_options(cl);
  add_partition_options(cl);
  add_dataset_options(cl, true);
  cl.add_threads_option();
  cl.add_device_options(true);
  cl.add_seed_option();
  cl.add_overwrite_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  auto comm = make_communicator(cl.get<std::string>("comm"));
  try {
    const auto compute = start_command(cl, comm->rank() == 0);
    if (comm->rank() == 0) std::cerr << "communicator: " << comm->name() << ", " << comm->size() << " ranks\n";
    check_ranks_agree(*comm, cl);
    validate_federate_options(cl, *comm);
    const auto method = cl.get<std::string>("method");
    auto loaded = load_model(cl.get<std::string>("model"));
    validate_prompt_options(cl, loaded.model->config());
    const auto paths = method_results_paths(cl, method, federated_method_name);
    const auto locks = comm->rank() == 0 ? claim_federated_outputs(cl, paths) : OutputLocks{};
    auto setup = load_setup(cl, *comm, std::move(loaded), compute);
    // P0: pretrained on rank 0 and sent to all; the same P0 for both methods.
    torch::Tensor p0;
    nlohmann::json references;
    EvaluationReport p0_only;
    int64_t p0_count = 0;
    if (comm->rank() == 0) {
      p0 = first_prompts(cl, setup.model, setup.data.train);
      p0_only = evaluate_p0_only(setup.model, p0, setup.data.test, setup.dataset.tasks, cl.get<int>("eval-batch-size"));
      references["p0_only"] = perplexity_json(p0_only);
      p0_count = p0.size(0);
    }
    comm->broadcast(&p0_count, sizeof p0_count, 0);
    if (comm->rank() != 0) p0 = torch::zeros({p0_count, int64_t(setup.model->config().dim)}, setup.model->device());
    broadcast_tensor(*comm, p0, 0);
    EvaluationReport fedprompt, mop;
    auto cache = activation_cache_option(cl, compute.device, comm->rank() == 0);
    for (const auto& [m, path] : paths)
      (m == PromptMethod::kMop ? mop : fedprompt) =
          run_federated_method(cl, m, path, *comm, setup, p0, references, *cache);
    if (comm->rank() == 0) {
      print_comparison_table("FedPrompt", method == "mop" ? nullptr : &fedprompt,
                             method == "fedprompt" ? nullptr : &mop, p0_only, nullptr);
      std::cout << "communicator: " << comm->bytes_reduced() << " bytes reduced, " << comm->bytes_broadcast()
                << " bytes broadcast, " << std::fixed << std::setprecision(2) << comm->seconds_communicating()
                << " s inside collectives\n";
    }
  } catch (const std::exception& e) {
    if (comm->size() == 1) throw;
    std::cerr << "mops federate: error on rank " << comm->rank() << ": " << e.what() << "\n";
    comm->abort(dynamic_cast<const UsageError*>(&e) ? 2 : 1);
  }
  return 0;
}

}  // namespace mops
