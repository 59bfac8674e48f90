// The MoPs gate: G = softmax(W2 relu(W1 x + b1) + b2) over E experts, where x is the mean of
// the layer-L_mid hidden states over an example's question tokens (instruction + context).
//
// Letters: B batch, T tokens, C width, E experts.
#pragma once
#include <torch/torch.h>

namespace mops {

class GateImpl : public torch::nn::Module {
 public:
  // Weights and biases uniform in +-1/sqrt(fan-in) (PyTorch's default), from `seed`.
  GateImpl(int width, int hidden, int experts, uint64_t seed);
  // hidden: (B, T, C) token hidden states; question_mask: (B, T) -> (B, E), rows sum to 1
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& question_mask);
  // The same before the softmax: (B, E)
  torch::Tensor logits(const torch::Tensor& hidden, const torch::Tensor& question_mask);
  torch::nn::Linear w1{nullptr}, w2{nullptr};
};
TORCH_MODULE(Gate);

// Mean of hidden (B, T, C) over the positions where question_mask (B, T) is 1 -> (B, C).
// An example with no question token is an error (the gate would have nothing to read).
torch::Tensor question_mean(const torch::Tensor& hidden, const torch::Tensor& question_mask);

}  // namespace mops
