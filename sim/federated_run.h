// A federated run (`mops federate`): MoPs and/or FedPrompt (the prompt baseline) trained with
// FedAvg over simulated clients, the clients spread over the ranks of a Communicator.
//
// On every rank: the training examples are partitioned over the clients (partition.h) and the
// rank keeps its own clients' (client_schedule.h). Rank 0 pretrains P0 (or reads it) and
// evaluates "P0 only"; P0 is broadcast. Then for each method in turn (FedPrompt, then MoPs):
// rank 0 decides where it starts (fresh, after its checkpoint when resuming, or not at all when
// its file says finished), prepares the start state (mid prompts, gate pretraining) or reads it
// from the checkpoint, and broadcasts it; every rank runs the rounds (federated_training.h); rank
// 0 writes each round, evaluation and checkpoint to the method's results file, which is also its
// checkpoint (federated_resume.h). docs/DESIGN.md, section 4, has the data flow.
#pragma once
#include <string>
#include <vector>

#include "communicator.h"
#include "comparison_table.h"
#include "partition.h"
#include "prompt_run_settings.h"
#include "run_results.h"
#include "tokenized_split.h"

namespace mops {

struct FederatedRunSettings {
  int rounds = 20;
  int clients_per_round = 10;  // A, at most partition.clients (C)
  int local_steps = 250;       // per active client and round
  int eval_every = 5;          // rounds between test evaluations (and the last round)
  int checkpoint_every = 5;    // rounds between checkpoints (and the last round)
  bool resume = false;         // continue each method's results file from its checkpoint
  PartitionOptions partition;  // C clients and how the tasks are spread over them
  // The options a resumed run may change without changing the result (--threads, ...): left
  // out when its config_json is compared with the checkpoint's.
  std::vector<std::string> resume_free_options;
};

// "mop" or "fedprompt": the method's name in a federated results file.
const char* federated_method_name(PromptMethod method);

// Every rank must run the same configuration: the ranks compare the hash of their `config_json`
// with rank 0's, and all stop with an error when any differs.
void check_ranks_agree(Communicator& comm, const std::string& config_json);

// Runs the methods of `outputs` (method_results_paths with federated_method_name) on every rank
// of `comm`. `model` is frozen on its device; `data` is the whole split on every rank (each rank
// trains only its clients' part; rank 0 evaluates on the test split); `compression` is the
// results files' attribute. Rank 0's outputs are replaced, or continued when settings.resume.
// Returns, on rank 0, P0 only and each method's last evaluation (empty reports elsewhere).
RunReports run_federated_methods(Communicator& comm, Llama& model, const PromptRunSettings& prompts,
                                 const FederatedRunSettings& federated, const std::vector<MethodPath>& outputs,
                                 const TokenizedSplit& data, const std::string& compression);

}  // namespace mops
