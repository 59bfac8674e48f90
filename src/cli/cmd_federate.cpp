// `mops federate`: MoPs and/or FedPrompt (the prompt baseline) trained with FedAvg over
// simulated clients, one MPI rank per group of clients (`mpirun -np R mops federate ...`).
// The options, their checks and rank 0's outputs are here; the run is sim/federated_run.h:
// rank 0 prepares the start state (P0, mid prompts, gate pretraining) and writes the results
// file, which is also the checkpoint (sim/federated_resume.h); every rank trains its own
// clients (sim/federated_training.h).
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>

#include "checkpoint.h"
#include "command_start.h"
#include "commands.h"
#include "communicator.h"
#include "comparison_table.h"
#include "dataset_options.h"
#include "errors.h"
#include "federated_run.h"
#include "output_files.h"
#include "prompt_options.h"
#include "run_results.h"
#include "run_start.h"

namespace mops {
namespace {

// Options that may change between a run and its --resume without changing the result.
const std::vector<std::string> kResumeFreeOptions = {"resume", "overwrite", "threads", "thread-split", "comm"};

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
OutputLocks claim_federated_outputs(const CommandLine& cl, const std::vector<MethodPath>& outputs) {
  std::vector<std::string> files;
  for (const auto& output : outputs) files.push_back(output.path);
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

FederatedRunSettings federated_run_settings(const CommandLine& cl) {
  FederatedRunSettings s;
  s.rounds = cl.get<int>("rounds");
  s.clients_per_round = cl.get<int>("clients-per-round");
  s.local_steps = cl.get<int>("local-steps");
  s.eval_every = cl.get<int>("eval-every");
  s.checkpoint_every = cl.get<int>("checkpoint-every");
  s.resume = cl.get<bool>("resume");
  s.partition = partition_options(cl);
  s.resume_free_options = kResumeFreeOptions;
  return s;
}

}  // namespace

int run_federate(int argc, const char* const* argv) {
  CommandLine cl("federate",
                 "Train MoPs and/or FedPrompt (the prompt baseline) with FedAvg over simulated clients, the clients "
                 "spread over MPI ranks: mpirun -np R mops federate ... Rank 0 writes the HDF5 results file, which "
                 "is also the checkpoint that --resume continues from.");
  constexpr int kMaxInt = std::numeric_limits<int>::max();
  cl.add_choice("method", "both", {"mop", "fedprompt", "both", "lora", "ia3", "prefix", "mpt"},
                "MoPs, FedPrompt, both (FedPrompt first), or a peer method FedAvg'd the same way: lora (FedIT, --lora-*), "
                "ia3, prefix, each in the layers >= L_mid; mpt (multitask prompt tuning, the task id read from the data; "
                "mops train --help)");
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
    check_ranks_agree(*comm, cl.resolved_json());
    validate_federate_options(cl, *comm);
    auto loaded = load_model(cl.get<std::string>("model"));
    validate_prompt_options(cl, loaded.model->config());
    const auto method = cl.get<std::string>("method");
    const auto outputs = method_results_paths(cl.get<std::string>("out"), method, federated_method_name);
    const auto locks = comm->rank() == 0 ? claim_federated_outputs(cl, outputs) : OutputLocks{};
    const auto prompts = prompt_run_settings(cl);
    const auto federated = federated_run_settings(cl);
    auto& model = loaded.model;
    model->freeze_on(compute.device, compute.dtype);
    const auto data = load_tokenized_data(cl, model->config().max_seq_len - 1 - prompt_positions(prompts));
    const auto reports = run_federated_methods(*comm, model, prompts, federated, outputs, data,
                                               compression_attribute(loaded.metadata));
    if (comm->rank() == 0) {
      print_comparison_table(std::cout, "FedPrompt", reports);
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
