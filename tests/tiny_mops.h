// A tiny random backbone, MoPs configs and 4-task examples, shared by the MoPs and federated tests.
#pragma once
#include "prompt_state.h"
#include "prompt_training.h"
#include "seeded_random.h"

namespace mops {

inline ModelConfig tiny_config() {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 24;
  c.n_layers = 4;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 40;
  c.max_seq_len = 96;
  return c;
}

// `gain` > 1 makes the weights larger than the training init, so differences are far above rounding.
inline Llama tiny_backbone(uint64_t seed = 1, double gain = 4.0) {
  Llama model(tiny_config());
  model->init_weights(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.dim() == 2) p.mul_(gain);
  }
  model->freeze();
  return model;
}

inline MopConfig tiny_mop(PromptMethod method, GateScale scale = GateScale::kExperts) {
  MopConfig c;
  c.method = method;
  c.first_prompt_count = 3;
  c.experts = 4;
  c.prompts_per_expert = 2;
  c.gate_hidden = 8;
  c.gate_scale = scale;
  c.task_count = 4;  // tiny_examples' tasks
  return c.resolved(tiny_config());
}

// Random prompts of the embeddings' scale; the gate keeps its random init.
inline PromptState random_state(const MopConfig& config, uint64_t seed) {
  PromptState state(config, tiny_config(), seed);
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  state->first_prompts.copy_(torch::randn(state->first_prompts.sizes(), gen));
  if (state->mid_prompts.defined()) state->mid_prompts.copy_(torch::randn(state->mid_prompts.sizes(), gen));
  return state;
}

// Examples of 12 tokens: BOS, 5 random question tokens of the task's range, the task's fixed
// 5-token answer, EOS; task = i % 4.
inline std::vector<TokenizedExample> tiny_examples(size_t count, uint64_t seed) {
  SeededRandom random(seed);
  std::vector<TokenizedExample> examples(count);
  for (size_t i = 0; i < count; ++i) {
    auto& e = examples[i];
    e.task = int(i % 4);
    e.ids = {1};
    for (int t = 0; t < 5; ++t) e.ids.push_back(3 + e.task * 8 + random.between(0, 3));
    for (int t = 0; t < 5; ++t) e.ids.push_back(30 + e.task + t);
    e.ids.push_back(2);
    e.question_begin = 1;
    e.question_end = 6;
    e.response_begin = 6;
  }
  return examples;
}

// Keeps the losses and evaluations training reports.
class NullObserver : public TrainingObserver {
 public:
  void on_step(int64_t, double loss, int64_t, const torch::Tensor&) override { losses.push_back(loss); }
  void on_eval(int64_t, const PromptEvaluation& e) override { evaluations.push_back(e); }
  std::vector<double> losses;
  std::vector<PromptEvaluation> evaluations;
};

}  // namespace mops
