// Training the prompt state on a frozen backbone: P0 pretraining, mid-prompt initialisation,
// gate pretraining, and the main loop of Algorithm 1 (MoPs) or of the prompt baseline, with
// evaluation on the test split.
//
// Letters: T tasks, E experts, C width.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "evaluation.h"
#include "llama.h"
#include "prompt_state.h"
#include "seeded_random.h"

namespace mops {

class ActivationCache;

// Example indices in seeded random order, reshuffled every epoch.
class BatchSampler {
 public:
  BatchSampler(size_t examples, uint64_t seed);
  std::vector<size_t> next(int batch_size);

 private:
  std::vector<size_t> order_;
  size_t position_ = 0;
  SeededRandom random_;
};

struct TrainOptions {
  int steps = 1000;
  double lr = 1e-3;
  double gate_lr = -1;  // the gate's learning rate in the main loop; < 0: lr, 0: the gate stays frozen
  double gate_balance = 0;  // weight of the load-balancing term (gate.h) in the main loop's loss; 0: none (the paper)
  // Standard deviation of the Gaussian noise added to the gate's logits in each main-loop step
  // (noisy top-k routing, gate.h), drawn from seed + 13; 0: none (the paper). Never in evaluation.
  double gate_noise = 0;
  int batch_size = 1;
  int eval_every = 200;      // and at the end
  int eval_batch_size = 16;
  uint64_t seed = 0;
  ActivationCache* lower_cache = nullptr;  // when set, the lower half's states are reused (gate pretraining, main loop)
};

struct PromptEvaluation {
  EvaluationReport report;
  // MoPs only, per task over its test examples (NaN for a task without any):
  torch::Tensor gate_by_task;          // (T, E) the mean gate vector
  torch::Tensor gate_entropy_by_task;  // (T) the mean per-example gate entropy (gate_entropy)
  torch::Tensor experts_used_by_task;  // (T) the mean per-example number of experts used (experts_used)
};

// Receives what training measures (terminal, results file).
class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  // gate: the step's gate outputs (B, E), MoPs only (undefined for the baseline)
  virtual void on_step(int64_t step, double loss, int64_t tokens, const torch::Tensor& gate) = 0;
  virtual void on_eval(int64_t step, const PromptEvaluation& evaluation) = 0;
};

struct TrainingSummary {
  PromptEvaluation final;
  double seconds = 0;
  double tokens_per_second = 0;
};

// Random prompt vectors (N, C) at the scale (RMS) of the backbone's token embeddings.
torch::Tensor random_prompts(Llama& backbone, int64_t count, uint64_t seed);

// A state of the baseline's shape holding only `first_prompts` (K0, C): P0 alone.
PromptState first_prompt_state(Llama& backbone, const torch::Tensor& first_prompts);

// Trains P0 through the whole backbone on the response loss; returns the last loss.
double pretrain_first_prompts(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& train,
                              const TrainOptions& options);
// Mid prompts: "random" (normal, the token embeddings' RMS) or "p0" (the states P0 reaches at
// L_mid, averaged over a batch, repeated for every expert).
void init_mid_prompts(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& train,
                      const std::string& how, uint64_t seed);
// Cross-entropy of the gate against expert = task id mod E; returns the last batch's accuracy.
double pretrain_gate(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& train,
                     const TrainOptions& options);
// --gate-route knn: state->task_centroids (T, C) = each task's mean gate input over `train`, in
// batches of options.eval_batch_size (from options.lower_cache when set); returns the fraction of
// `train` whose nearest centroid is its own task's.
double fit_task_centroids(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& train,
                          const TrainOptions& options);

PromptEvaluation evaluate_prompted(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& test,
                                   const std::vector<std::string>& tasks, int batch_size);

struct LocalTraining {
  double mean_loss = 0;
  torch::Tensor mean_gate;  // (E) float64: the gate averaged over the examples trained on; MoPs only
  int64_t tokens = 0;
};

// `options.steps` steps of the main loop's optimizer, started fresh, on `examples`, without
// evaluation: a federated client's local training in one round.
LocalTraining train_local(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& examples,
                          const TrainOptions& options);

// The main loop: Adam on the mid prompts (and the gate), evaluation every eval_every steps.
// A non-finite loss stops training with an error before any state is changed by it.
TrainingSummary train_prompts(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& train,
                              const std::vector<TokenizedExample>& test, const std::vector<std::string>& tasks,
                              const TrainOptions& options, TrainingObserver& observer);

}  // namespace mops
