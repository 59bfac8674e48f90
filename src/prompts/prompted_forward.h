// A forward pass of the frozen backbone with a PromptState:
//   lower half  [0, L_mid): tokens with P0 prepended, without autograd (nothing there trains);
//   gate        on the mean hidden state of the question tokens at the input of L_mid (MoPs);
//   upper half  [L_mid, L): P0's positions replaced by the E * P mid prompts, the attention to
//               them scaled by the gate, with autograd.
// The two halves are separate calls so that the lower half's output can be computed once.
//
// Letters: B batch, T tokens, C width, V vocabulary, K0 first prompts, E experts.
#pragma once
#include <torch/torch.h>

#include "example_batch.h"
#include "llama.h"
#include "prompt_state.h"

namespace mops {

struct PromptedOutput {
  torch::Tensor logits;  // (B, T, V)
  torch::Tensor gate;    // (B, E), MoPs only
};

// (B, T) ids -> (B, K0 + T, C) hidden states at the input of layer L_mid, no autograd.
torch::Tensor lower_half(Llama& backbone, PromptState& state, const torch::Tensor& ids);
// What the gate reads of lower-half states (B, K0 + T, C): the token positions (B, T, C), in the
// state's dtype (float32) whatever the backbone's (maybe bfloat16).
torch::Tensor gate_states(PromptState& state, const torch::Tensor& lower);
// The gate's output (B, E) on lower-half states (B, K0 + T, C).
torch::Tensor gate_output(PromptState& state, const torch::Tensor& lower, const torch::Tensor& question_mask);
// `attention`, when given, receives the attention probabilities of layers >= L_mid (llama.h).
PromptedOutput upper_half(Llama& backbone, PromptState& state, const torch::Tensor& lower,
                          const torch::Tensor& question_mask, std::vector<torch::Tensor>* attention = nullptr);
PromptedOutput prompted_forward(Llama& backbone, PromptState& state, const ExampleBatch& batch,
                                std::vector<torch::Tensor>* attention = nullptr);

struct PromptedLoss {
  torch::Tensor loss;  // (): mean NLL of the batch's response tokens
  torch::Tensor gate;  // (B, E), MoPs only
};
// The training loss, response_loss(upper_half(...).logits, batch), computing only what it reads:
// the last layer's outputs from the first position that predicts a response token on, and the
// final norm and classifier only at positions that predict one.
PromptedLoss upper_half_loss(Llama& backbone, PromptState& state, const torch::Tensor& lower, const ExampleBatch& batch);

// The plan that runs `state` through the backbone's own forward (and so through generation
// with a KV cache): P0 at layer 0, the mid prompts at L_mid and, for MoPs, the column weights
// of the gate's choice for this prompt (its question span read at L_mid).
PromptPlan generation_plan(Llama& backbone, PromptState& state, const TokenizedExample& prompt);

// The backbone with P0 only (no mid prompts, no gate): (B, T) -> (B, T, V).
torch::Tensor first_prompts_forward(Llama& backbone, PromptState& state, const torch::Tensor& ids);

}  // namespace mops
