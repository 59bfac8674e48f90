// The rows and attributes a prompt run adds to its results files (results_file.h; the schema is
// the README's "Results files (HDF5)"), shared by the centralized and the federated run: which
// file each method writes, an evaluation row, the gate after pretraining, and the model's
// compression record.
//
// Letters: T tasks, E experts.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "llama.h"
#include "prompt_state.h"
#include "prompt_run_settings.h"
#include "prompt_training.h"
#include "results_file.h"
#include "tokenized_split.h"

namespace mops {

// A method and the results file it writes.
struct MethodPath {
  PromptMethod method;
  std::string path;
};

// The results file of each method `chosen` names ("both": the baseline and MoPs, or one method's
// name), in the order the methods run (the baseline, then MoPs): `out`, or with both methods `out`
// with the method's name (`name_of`) before the extension (results.h5 -> results.mop.h5).
std::vector<MethodPath> method_results_paths(const std::string& out, const std::string& chosen,
                                             const char* (*name_of)(PromptMethod));

// The header of a prompt run's results file: `method` as the file names it (method_name, or
// federated_method_name), mode "federated" exactly when `active_clients` > 0, the tasks and the
// held-out split of `data`.
ResultsHeader prompt_results_header(const PromptRunSettings& settings, const MopConfig& config,
                                    const TokenizedSplit& data, const std::string& method,
                                    int active_clients = 0);

// An /eval row: per-task and overall perplexity, and for MoPs the gate per task (T, E), its mean
// entropy and experts used per task (T).
void append_evaluation(ResultsFile& results, int64_t step, const PromptEvaluation& evaluation);

// A training step's gate row: the load per expert and the mean entropy of gate outputs (B, E);
// empty for an undefined gate (the baseline).
GateStep gate_step(const torch::Tensor& gate);

// The state a method's main loop starts from (after gate pretraining), evaluated on `test`
// (the held-out split): the root attribute "references" is `references` plus "start", its
// perplexity_json, and for MoPs /state/gate_by_task_after_pretraining (T, E) is its gate per task.
// Returns the evaluation.
EvaluationReport write_start_state(ResultsFile& results, nlohmann::json references, Llama& model, PromptState& state,
                                   const std::vector<TokenizedExample>& test, const std::vector<std::string>& tasks,
                                   int batch_size);

// The root attribute "trainable_parameters", what `state`'s method trains (trained_values()),
// and a line on stderr saying it for the method named `label`.
void write_trainable_parameters(ResultsFile& results, PromptState& state, const std::string& label);

// The root attribute "compression" of a results file: the model's compression record without its
// per-matrix rows ({"method": "none"} for an uncompressed model).
std::string compression_attribute(const std::map<std::string, std::string>& model_metadata);

}  // namespace mops
