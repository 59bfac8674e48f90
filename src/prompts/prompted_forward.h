// Where prompts enter the frozen backbone: the one module that puts them there, for training,
// evaluation and generation alike.
//   lower half  [0, L_mid): tokens with P0 prepended, without autograd (nothing there trains but
//               LoRA with --lora-layers all, whose adapters there it runs with autograd);
//               it also takes the gate's input, the mean hidden state of the question tokens at
//               the input of the gate layer (L_mid, or a layer below it);
//   gate        on that input (MoPs);
//   upper half  [L_mid, L): P0's positions replaced by the E * P mid prompts, the attention to
//               them scaled by the gate's column weights (gate.h), with autograd.
// The two halves are separate calls so that the lower half's output can be computed once
// (activation_cache.h). Generation (PromptedDecoder) runs the same halves with a KV cache: the
// prompt's lower half fills the cache of layers < L_mid and gives the gate, its upper half the
// cache of the others; each new token then goes through both halves with the same weights.
//
// Letters: B batch, T tokens, C width, V vocabulary, K0 first prompts, E experts, P prompts per
// expert.
#pragma once
#include <torch/torch.h>

#include "example_batch.h"
#include "generate.h"
#include "llama.h"
#include "prompt_state.h"

namespace mops {

struct PromptedOutput {
  torch::Tensor logits;  // (B, T, V)
  torch::Tensor gate;    // (B, E), MoPs only
};

// What the lower half hands on.
struct LowerHalf {
  torch::Tensor states;      // (B, K0 + T, C) the hidden states at the input of layer L_mid
  torch::Tensor gate_input;  // (B, C) the gate's input (gate.h), in the state's dtype (float32)
                             // whatever the backbone's; given a question mask only
  torch::Tensor hashed_expert;  // (B) int64 on the CPU: each example's expert under --gate-route
                                // hash (gate.h); given a question mask and that route only
};

// (B, T) ids -> the lower half, no autograd (but for LoRA's adapters under --lora-layers all);
// with `question_mask` (B, T) the gate's input too,
// the mean over the question tokens of the states at the input of the gate layer (and under
// --gate-route hash each example's expert). A given cache receives the keys and values of
// layers < L_mid.
// `dropout_masks` as LayerRun's (LoRA in all layers, training).
LowerHalf lower_half(Llama& backbone, PromptState& state, const torch::Tensor& ids,
                     const torch::Tensor& question_mask = {}, KVCache* cache = nullptr,
                     at::Generator* dropout_masks = nullptr);
// The question mask lower_half needs for `state`: the batch's for MoPs, none for the baseline
// (which has no gate, and may then see examples without question tokens).
torch::Tensor gate_question_mask(PromptState& state, const ExampleBatch& batch);
// The gate's output (B, E) on the lower half's gate input; logit_noise (B, E), when given, joins
// its logits (training, gate.h). Under --gate-route hash: one-hot rows on the hashed experts;
// under knn: on each example's task mod E when `training_tasks` (B) is given (the main loop), on
// its nearest task centroid's otherwise.
torch::Tensor gate_output(PromptState& state, const LowerHalf& lower, const torch::Tensor& logit_noise = {},
                          const std::vector<int>* training_tasks = nullptr);
// `tasks` (B), each example's task id, is what MPT's prompts depend on (the other methods ignore
// it); `observer`, when given, sees the layers >= L_mid (llama.h).
PromptedOutput upper_half(Llama& backbone, PromptState& state, const LowerHalf& lower, const std::vector<int>& tasks,
                          LayerObserver* observer = nullptr);
PromptedOutput prompted_forward(Llama& backbone, PromptState& state, const ExampleBatch& batch,
                                LayerObserver* observer = nullptr);

struct PromptedLoss {
  torch::Tensor loss;  // (): mean NLL of the batch's response tokens
  torch::Tensor gate;  // (B, E), MoPs only
};
// The training loss, response_loss(upper_half(...).logits, batch), computing only what it reads:
// the last layer's outputs from the first position that predicts a response token on, and the
// final norm and classifier only at positions that predict one. gate_noise (B, E), when given,
// joins the gate's logits (MoPs); dropout_masks, when given, draws LoRA's dropout (llama.h).
PromptedLoss upper_half_loss(Llama& backbone, PromptState& state, const LowerHalf& lower, const ExampleBatch& batch,
                             const torch::Tensor& gate_noise = {}, at::Generator* dropout_masks = nullptr);

// The backbone with P0 only (no mid prompts, no gate), with autograd to P0: (B, T) -> (B, T, V).
torch::Tensor first_prompts_forward(Llama& backbone, PromptState& state, const torch::Tensor& ids);

// Generation with a trained state: the gate chooses the experts from the prompt's question span
// (MoPs); MPT takes the prompts of the prompt's task (TokenizedExample::task).
class PromptedDecoder : public Decoder {
 public:
  PromptedDecoder(Llama backbone, PromptState state, TokenizedExample prompt);
  torch::Tensor prefill() override;
  torch::Tensor step(int64_t id) override;
  int64_t prompt_length() const override;
  int64_t context_length() const override { return backbone_->config().max_seq_len; }
  // The gate's output for the prompt (1, E) after prefill(), MoPs only.
  const torch::Tensor& gate() const { return gate_; }

 private:
  Llama backbone_;
  PromptState state_;
  TokenizedExample prompt_;
  KVCache cache_;
  torch::Tensor gate_;            // (1, E)
  torch::Tensor column_weights_;  // (1, E * P)
};

}  // namespace mops
