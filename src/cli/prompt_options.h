// The prompt options `mops train` and `mops federate` share: P0, the MoPs shape, the mid-prompt
// initialisation, gate pretraining and the optimizer, and the start state they build.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "activation_cache.h"
#include "cli_options.h"
#include "prompt_training.h"
#include "results_file.h"

namespace mops {

// --p0-prompts, --p0-steps, --p0-lr, --p0-batch-size.
void add_p0_options(CommandLine& cl);

// The P0 options, --p0 FILE, --experts, --prompts-per-expert, --mid-layer,
// --gate-hidden, --gate-scale, --mid-init, --gate-pretrain-steps, --lr, --gate-lr,
// --batch-size, --eval-batch-size, --activation-cache.
void add_prompt_options(CommandLine& cl);

// --lr, --gate-lr, --batch-size, --eval-batch-size and --seed; the caller sets steps.
TrainOptions optimizer_options(const CommandLine& cl);

// --p0-prompts leaving room for tokens in the model's max_seq_len; a UsageError otherwise.
void validate_p0_options(const CommandLine& cl, const ModelConfig& model);

// The prompt options that depend on the model: --mid-layer in [1, L-1] (or -1), the prompt
// positions leaving room for tokens, a valid --activation-cache; a UsageError naming the option.
void validate_prompt_options(const CommandLine& cl, const ModelConfig& model);

// The longest prompt block either method puts in front of the tokens (K0 or E x P).
int prompt_positions(const CommandLine& cl);

// P0 from --p0 FILE, or pretrained here (random start, then --p0-steps of Adam).
torch::Tensor first_prompts(const CommandLine& cl, Llama& model, const std::vector<TokenizedExample>& train);

MopConfig mop_config(const CommandLine& cl, PromptMethod method, int first_prompt_count, const ModelConfig& model);

// P0 copied in and the mid prompts initialised by --mid-init; the gate keeps its seeded init.
PromptState initial_prompt_state(const CommandLine& cl, PromptMethod method, Llama& model, const torch::Tensor& p0,
                                 const std::vector<TokenizedExample>& train);

// --gate-pretrain-steps of cross-entropy on task labels (MoPs only); prints the accuracy.
void pretrain_gate_option(const CommandLine& cl, Llama& model, PromptState& state,
                          const std::vector<TokenizedExample>& train, ActivationCache& cache);

// The cache --activation-cache asks for, shared by gate pretraining and both methods' main
// loops (they see the same P0); prints its budget when `log`.
std::unique_ptr<ActivationCache> activation_cache_option(const CommandLine& cl, const torch::Device& device, bool log);

// The results file of each method `chosen` names ("both" or one method's name), in the order the
// methods run (the baseline, then MoPs): --out, or with both methods --out with the method's name
// (`name_of`) before the extension (results.h5 -> results.mop.h5).
std::vector<std::pair<PromptMethod, std::string>> method_results_paths(const CommandLine& cl, const std::string& chosen,
                                                                       const char* (*name_of)(PromptMethod));

// The reference "P0 only": the model with the first-layer prompts alone, on `test`.
EvaluationReport evaluate_p0_only(Llama& model, const torch::Tensor& p0, const std::vector<TokenizedExample>& test,
                                  const std::vector<std::string>& tasks, int batch_size);

// An /eval row: per-task and overall perplexity, and for MoPs the gate per task.
void append_evaluation(ResultsFile& results, int64_t step, const PromptEvaluation& evaluation);

// /state/gate_by_task_after_pretraining (T, E): the gate per task on `test`, before training.
void write_gate_after_pretraining(ResultsFile& results, Llama& model, PromptState& state,
                                  const std::vector<TokenizedExample>& test, const std::vector<std::string>& tasks,
                                  int batch_size);

// The root attribute "compression" of a results file: the model's compression record without its
// per-matrix rows ({"method": "none"} for an uncompressed model).
std::string compression_attribute(const std::map<std::string, std::string>& model_metadata);

// Test perplexity per task and overall: dense (when given), P0 only, the baseline (labelled
// `baseline_label`), MoPs, and the gain of MoPs over the baseline in %, as the paper's tables.
void print_comparison_table(const std::string& baseline_label, const EvaluationReport* baseline,
                            const EvaluationReport* mop, const EvaluationReport& p0_only, const EvaluationReport* dense);

}  // namespace mops
