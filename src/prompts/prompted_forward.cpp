#include "prompted_forward.h"

#include "precision.h"

namespace mops {

torch::Tensor lower_half(Llama& backbone, PromptState& state, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  const auto& c = state->config();
  auto tokens = backbone->embed(ids);                                                  // (B, T, C)
  auto prompts = batch_prompts(state->first_prompts.detach().to(tokens.scalar_type()), ids.size(0),
                               "first prompts");                                       // (B, K0, C)
  auto h = torch::cat({prompts, tokens}, 1);                                           // (B, K0 + T, C)
  return backbone->run_layers(h, 0, c.mid_layer, c.first_prompts, PromptPlan{}, nullptr);
}

torch::Tensor gate_states(PromptState& state, const torch::Tensor& lower) {
  return lower.slice(1, state->config().first_prompts).to(state->mid_prompts.scalar_type());  // (B, T, C)
}

torch::Tensor gate_output(PromptState& state, const torch::Tensor& lower, const torch::Tensor& question_mask) {
  return state->gate(gate_states(state, lower), question_mask);  // (B, E)
}

namespace {

// The upper half's final states (B, E * P + T - output_from, C): the rows from `output_from`
// on, and, for MoPs, the gate.
struct UpperStates {
  torch::Tensor states;
  torch::Tensor gate;
};

UpperStates upper_states(Llama& backbone, PromptState& state, const torch::Tensor& lower,
                         const torch::Tensor& question_mask, std::vector<torch::Tensor>* attention,
                         int64_t output_from = 0) {
  const auto& c = state->config();
  const int64_t B = lower.size(0);
  UpperStates out;
  PromptPlan plan;
  plan.attention = attention;
  if (c.method == PromptMethod::kMop) {
    out.gate = gate_output(state, lower, question_mask);  // (B, E)
    plan.weight_from_layer = c.mid_layer;
    plan.column_weights = state->column_weights(out.gate);  // (B, E * P)
  }
  auto mid = batch_prompts(state->mid_prompts, B, "mid prompts");  // (B, E * P, C)
  auto h = replace_prompt_positions(lower, c.first_prompts, mid);   // (B, E * P + T, C)
  out.states = backbone->run_layers(h, c.mid_layer, backbone->config().n_layers, c.mid_prompts(), plan, nullptr,
                                    output_from);
  return out;
}

}  // namespace

PromptedOutput upper_half(Llama& backbone, PromptState& state, const torch::Tensor& lower,
                          const torch::Tensor& question_mask, std::vector<torch::Tensor>* attention) {
  auto upper = upper_states(backbone, state, lower, question_mask, attention);
  return {backbone->classify(upper.states, state->config().mid_prompts()), upper.gate};  // (B, T, V)
}

PromptedLoss upper_half_loss(Llama& backbone, PromptState& state, const torch::Tensor& lower, const ExampleBatch& batch) {
  const int64_t P = state->config().mid_prompts(), T = batch.ids.size(1);
  const auto predicts = batch.response_mask.to(lower.device()) > 0;  // (B, T - 1)
  const auto rows = predicts.any(0).nonzero();    // token positions that predict a response token somewhere
  if (rows.numel() == 0) {  // no response token: loss 0
    auto upper = upper_states(backbone, state, lower, batch.question_mask, nullptr);
    return {upper.states.sum() * 0.0, upper.gate};
  }
  // The last layer computes only positions first .. T-1; the loss reads first .. T-2.
  const int64_t first = rows.min().item<int64_t>();
  auto upper = upper_states(backbone, state, lower, batch.question_mask, nullptr, P + first);  // (B, T - first, C)
  const auto kept = predicts.slice(1, first);                                                 // (B, T - 1 - first)
  auto states = upper.states.slice(1, 0, T - 1 - first).index({kept});                        // (N, C)
  auto targets = batch.ids.to(lower.device()).slice(1, first + 1).index({kept});              // (N)
  auto logits = at_least_float32(backbone->logits(states));                                     // (N, V)
  auto loss = torch::nn::functional::cross_entropy(logits, targets);                           // ()
  return {loss, upper.gate};
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
