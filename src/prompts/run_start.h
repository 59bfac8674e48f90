// The start of a prompt run, shared by the centralized run (centralized_run.h) and the
// federated one (sim/federated_run.h): P0 read or pretrained, the reference "P0 only", the
// activation cache both methods share, and each method's start state (mid prompts initialised,
// the gate pretrained). What they print goes to stderr, as progress.
//
// Letters: K0 first prompts, C width.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "activation_cache.h"
#include "evaluation.h"
#include "llama.h"
#include "prompt_run_settings.h"
#include "tokenized_split.h"

namespace mops {

// The longest prompt block either method puts in front of the tokens (K0 or E x P); a run's
// examples get the model's max_seq_len - 1 - this many tokens.
int prompt_positions(const PromptRunSettings& settings);

// P0 (K0, C): from p0.file, or pretrained here (a random start, then p0.steps of Adam), which
// prints the last loss.
torch::Tensor load_or_pretrain_first_prompts(const FirstPromptSettings& p0, uint64_t seed, Llama& model,
                            const std::vector<TokenizedExample>& train);

// settings.mop for `method` with K0 = first_prompt_count and T = task_count, resolved against the
// model.
MopConfig method_config(const PromptRunSettings& settings, PromptMethod method, int first_prompt_count,
                        int task_count, const ModelConfig& model);

// P0 copied in and the mid prompts initialised by settings.mid_init; the gate keeps its seeded
// init. Made on the CPU and moved to the model's device, so the start is the same on every device.
PromptState initial_prompt_state(const PromptRunSettings& settings, PromptMethod method, Llama& model,
                                 const torch::Tensor& p0, const TokenizedSplit& data);

// MoPs' routing before the main loop: settings.gate_pretrain_steps of cross-entropy on task labels,
// in batches of at least 8 (none for 0), printing the accuracy; under --gate-route knn the task
// centroids instead (fit_task_centroids); nothing under hash.
void pretrain_gate_for_run(const PromptRunSettings& settings, Llama& model, PromptState& state,
                           const std::vector<TokenizedExample>& train, ActivationCache& cache);

// The reference "P0 only": the model with the first-layer prompts alone, on `test`.
EvaluationReport evaluate_p0_only(Llama& model, const torch::Tensor& p0, const std::vector<TokenizedExample>& test,
                                  const std::vector<std::string>& tasks, int batch_size);

// The cache `spec` asks for (activation_cache_budget), shared by gate pretraining and both
// methods' main loops (they see the same P0); prints its budget when `log`.
std::unique_ptr<ActivationCache> make_activation_cache(const std::string& spec, const torch::Device& device, bool log);

}  // namespace mops
