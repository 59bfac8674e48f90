#include "prompted_forward.h"

namespace mops {

torch::Tensor lower_half(Llama& backbone, PromptState& state, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  const auto& c = state->config();
  auto tokens = backbone->embed(ids);                                                  // (B, T, C)
  auto prompts = batch_prompts(state->first_prompts.detach(), ids.size(0), "first prompts");  // (B, K0, C)
  auto h = torch::cat({prompts, tokens}, 1);                                           // (B, K0 + T, C)
  return backbone->run_layers(h, 0, c.mid_layer, c.first_prompts, PromptPlan{}, nullptr);
}

torch::Tensor gate_output(PromptState& state, const torch::Tensor& lower, const torch::Tensor& question_mask) {
  return state->gate(lower.slice(1, state->config().first_prompts), question_mask);  // (B, E)
}

PromptedOutput upper_half(Llama& backbone, PromptState& state, const torch::Tensor& lower,
                          const torch::Tensor& question_mask, std::vector<torch::Tensor>* attention) {
  const auto& c = state->config();
  const int64_t B = lower.size(0);
  PromptedOutput out;
  PromptPlan plan;
  plan.attention = attention;
  if (c.method == PromptMethod::kMop) {
    out.gate = gate_output(state, lower, question_mask);  // (B, E)
    plan.weight_from_layer = c.mid_layer;
    plan.column_weights = state->column_weights(out.gate);  // (B, E * P)
  }
  auto mid = batch_prompts(state->mid_prompts, B, "mid prompts");       // (B, E * P, C)
  auto h = replace_prompt_positions(lower, c.first_prompts, mid);        // (B, E * P + T, C)
  h = backbone->run_layers(h, c.mid_layer, backbone->config().n_layers, c.mid_prompts(), plan, nullptr);
  out.logits = backbone->classify(h, c.mid_prompts());                   // (B, T, V)
  return out;
}

PromptedOutput prompted_forward(Llama& backbone, PromptState& state, const ExampleBatch& batch,
                                std::vector<torch::Tensor>* attention) {
  return upper_half(backbone, state, lower_half(backbone, state, batch.ids), batch.question_mask, attention);
}

PromptPlan generation_plan(Llama& backbone, PromptState& state, const TokenizedExample& prompt) {
  torch::NoGradGuard no_grad;
  const auto& c = state->config();
  PromptPlan plan;
  plan.first_prompts = state->first_prompts.detach();
  plan.replace_layer = c.mid_layer;
  plan.replacement = state->mid_prompts.detach();
  if (c.method == PromptMethod::kMop) {
    const auto batch = make_batch({prompt}, 0, 1);
    auto gate = gate_output(state, lower_half(backbone, state, batch.ids), batch.question_mask);  // (1, E)
    plan.weight_from_layer = c.mid_layer;
    plan.column_weights = state->column_weights(gate);  // (1, E * P)
  }
  return plan;
}

torch::Tensor first_prompts_forward(Llama& backbone, PromptState& state, const torch::Tensor& ids) {
  PromptPlan plan;
  plan.first_prompts = state->first_prompts;
  return backbone->forward(ids, plan).logits;
}

}  // namespace mops
