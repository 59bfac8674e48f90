#include "prompted_forward.h"

#include "errors.h"
#include "precision.h"

namespace mops {
namespace {

// (P, C) prompts, or (B, P, C) per example, in front of `like`'s rows (B, T, C): (B, P + T, C).
torch::Tensor prepend(const torch::Tensor& prompts, const torch::Tensor& like) {
  auto batch = prompts.dim() == 3 ? prompts : prompts.unsqueeze(0).expand({like.size(0), -1, -1});  // (B, P, C)
  return torch::cat({batch.to(like.scalar_type()), like}, 1);
}

// Token embeddings (B, T, C) with P0 in front: (B, K0 + T, C).
torch::Tensor with_first_prompts(Llama& backbone, const torch::Tensor& first_prompts, const torch::Tensor& ids) {
  return prepend(first_prompts, backbone->embed(ids));
}

// The upper half's final states (B, E * P + T - output_from, C): the rows from `output_from`
// on, and, for MoPs, the gate and the column weights it gave.
struct UpperStates {
  torch::Tensor states;
  torch::Tensor gate;            // (B, E)
  torch::Tensor column_weights;  // (B, E * P)
};

// The layers [L_mid, L) on the lower half: with the mid prompts in P0's place (MoPs, prompt; MPT's
// those of each example's task in `tasks` (B)), or with P0's states going on and the adapters in
// the layers (LoRA, IA3, prefix). `training`: the main loop's step (--gate-route knn routes by
// `tasks` then, by the nearest centroid otherwise).
UpperStates upper_states(Llama& backbone, PromptState& state, const LowerHalf& lower, const std::vector<int>& tasks,
                         LayerRun run, const torch::Tensor& gate_noise = {}, bool training = false) {
  const auto& c = state->config();
  UpperStates out;
  if (c.method == PromptMethod::kMop) {
    out.gate = gate_output(state, lower, gate_noise, training ? &tasks : nullptr);  // (B, E)
    out.column_weights = state->gate->column_weights(out.gate);
    run.column_weights = out.column_weights;
  }
  run.prompt_columns = c.upper_prompt_count();
  run.adapters = state->layer_adapters();
  const auto tokens = lower.states.slice(1, c.first_prompt_count);  // (B, T, C)
  auto h = uses_mid_prompts(c.method) ? prepend(state->mid_prompts_for(tasks, tokens), tokens)  // (B, E * P + T, C)
                                      : lower.states;                                           // (B, K0 + T, C)
  out.states = backbone->run_layers(h, c.mid_layer, backbone->config().n_layers, run);
  return out;
}

}  // namespace

LowerHalf lower_half(Llama& backbone, PromptState& state, const torch::Tensor& ids, const torch::Tensor& question_mask,
                     KVCache* cache, at::Generator* dropout_masks) {
  const auto& c = state->config();
  torch::AutoGradMode autograd(c.trains_lower_half() && torch::GradMode::is_enabled());
  LayerRun run;
  run.prompt_columns = c.first_prompt_count;
  run.cache = cache;
  if (c.trains_lower_half()) {
    run.adapters = state->layer_adapters();
    run.dropout_masks = dropout_masks;
  }
  // The gate's input: the question tokens' mean of states (B, K0 + T, C), in the state's dtype.
  auto gate_input = [&](const torch::Tensor& h) {
    return question_mean(h.slice(1, c.first_prompt_count).to(state->first_prompts.scalar_type()), question_mask);
  };
  LowerHalf out;
  if (question_mask.defined() && c.gate_route == GateRoute::kHash) {
    out.hashed_expert = hashed_experts(ids, question_mask, c.experts);  // (B)
  }
  auto h = with_first_prompts(backbone, state->first_prompts.detach(), ids);  // (B, K0 + T, C)
  // Up to the gate layer, then (when it is below L_mid) on to L_mid.
  const auto at_gate = c.gate_layer > 0 ? backbone->run_layers(h, 0, c.gate_layer, run) : h;  // (B, K0 + T, C)
  if (question_mask.defined()) out.gate_input = gate_input(at_gate);                          // (B, C)
  out.states = c.gate_layer < c.mid_layer ? backbone->run_layers(at_gate, c.gate_layer, c.mid_layer, run) : at_gate;
  return out;
}

torch::Tensor gate_question_mask(PromptState& state, const ExampleBatch& batch) {
  return state->gate ? batch.question_mask : torch::Tensor();
}

torch::Tensor gate_output(PromptState& state, const LowerHalf& lower, const torch::Tensor& logit_noise,
                          const std::vector<int>* training_tasks) {
  MOPS_CHECK(lower.gate_input.defined(), "the gate needs the lower half's gate input (lower_half with a question mask)");
  const auto& c = state->config();
  const auto one_hot = [&](const torch::Tensor& experts) {  // (B) -> (B, E)
    return torch::one_hot(experts, c.experts).to(lower.gate_input.device(), lower.gate_input.scalar_type());
  };
  if (c.gate_route == GateRoute::kHash) {
    MOPS_CHECK(lower.hashed_expert.defined(), "--gate-route hash needs the lower half's hashed experts");
    return one_hot(lower.hashed_expert);
  }
  if (c.gate_route == GateRoute::kKnn) {
    const auto tasks = training_tasks ? torch::tensor(std::vector<int64_t>(training_tasks->begin(), training_tasks->end()))
                                      : nearest_centroids(lower.gate_input, state->task_centroids);  // (B)
    return one_hot(tasks % c.experts);
  }
  return state->gate(lower.gate_input, logit_noise);  // (B, E)
}

PromptedOutput upper_half(Llama& backbone, PromptState& state, const LowerHalf& lower, const std::vector<int>& tasks,
                          LayerObserver* observer) {
  LayerRun run;
  run.observer = observer;
  auto upper = upper_states(backbone, state, lower, tasks, run);
  return {backbone->classify(upper.states, state->config().upper_prompt_count()), upper.gate};  // (B, T, V)
}

PromptedLoss upper_half_loss(Llama& backbone, PromptState& state, const LowerHalf& lower, const ExampleBatch& batch,
                             const torch::Tensor& gate_noise, at::Generator* dropout_masks) {
  const int64_t P = state->config().upper_prompt_count(), T = batch.ids.size(1);
  const auto device = lower.states.device();
  const auto predicts = batch.response_mask.to(device) > 0;  // (B, T - 1)
  const auto rows = predicts.any(0).nonzero();    // token positions that predict a response token somewhere
  LayerRun run;
  run.dropout_masks = dropout_masks;
  if (rows.numel() == 0) {  // no response token: loss 0
    auto upper = upper_states(backbone, state, lower, batch.tasks, run, gate_noise, true);
    return {upper.states.sum() * 0.0, upper.gate};
  }
  // The last layer computes only positions first .. T-1; the loss reads first .. T-2.
  const int64_t first = rows.min().item<int64_t>();
  run.output_from = P + first;
  auto upper = upper_states(backbone, state, lower, batch.tasks, run, gate_noise, true);  // (B, T - first, C)
  const auto kept = predicts.slice(1, first);                                    // (B, T - 1 - first)
  auto states = upper.states.slice(1, 0, T - 1 - first).index({kept});           // (N, C)
  auto targets = batch.ids.to(device).slice(1, first + 1).index({kept});         // (N)
  auto logits = at_least_float32(backbone->logits(states));                      // (N, V)
  auto loss = torch::nn::functional::cross_entropy(logits, targets);             // ()
  return {loss, upper.gate};
}

PromptedOutput prompted_forward(Llama& backbone, PromptState& state, const ExampleBatch& batch,
                                LayerObserver* observer) {
  return upper_half(backbone, state, lower_half(backbone, state, batch.ids, gate_question_mask(state, batch)), batch.tasks,
                    observer);
}

torch::Tensor first_prompts_forward(Llama& backbone, PromptState& state, const torch::Tensor& ids) {
  LayerRun run;
  run.prompt_columns = state->config().first_prompt_count;
  auto h = with_first_prompts(backbone, state->first_prompts, ids);  // (B, K0 + T, C)
  return backbone->classify(backbone->run_layers(h, 0, backbone->config().n_layers, run), run.prompt_columns);
}

// ---------------------------------------------------------------- generation

PromptedDecoder::PromptedDecoder(Llama backbone, PromptState state, TokenizedExample prompt)
    : backbone_(std::move(backbone)), state_(std::move(state)), prompt_(std::move(prompt)) {
  require_prompt_ids(prompt_.ids);
}

int64_t PromptedDecoder::prompt_length() const {
  const auto& c = state_->config();
  return std::max(c.first_prompt_count, c.upper_prompt_count()) + int64_t(prompt_.ids.size());
}

torch::Tensor PromptedDecoder::prefill() {
  const auto batch = make_batch({prompt_}, 0, 1);
  const auto lower = lower_half(backbone_, state_, batch.ids, gate_question_mask(state_, batch), &cache_);
  LayerRun run;
  run.cache = &cache_;
  auto upper = upper_states(backbone_, state_, lower, batch.tasks, run);
  gate_ = upper.gate;
  column_weights_ = upper.column_weights;
  return backbone_->classify(upper.states, state_->config().upper_prompt_count())[0][-1];  // (V)
}

torch::Tensor PromptedDecoder::step(int64_t id) {
  const int mid = state_->config().mid_layer;
  LayerRun run;
  run.cache = &cache_;
  run.adapters = state_->layer_adapters();
  auto h = backbone_->run_layers(backbone_->embed(torch::tensor({id}, torch::kLong).unsqueeze(0)), 0, mid, run);
  run.column_weights = column_weights_;
  h = backbone_->run_layers(h, mid, backbone_->config().n_layers, run);  // (1, 1, C)
  return backbone_->classify(h, 0)[0][-1];                                // (V)
}

}  // namespace mops
