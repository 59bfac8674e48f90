// Rotary position embedding on interleaved pairs (Meta / llama2.c layout): element pairs
// (2i, 2i+1) of every head are rotated by pos * theta^(-2i/D). Hugging Face checkpoints use
// the rotate-half layout and are converted at load time (hf_checkpoint.cpp).
#pragma once
#include <torch/torch.h>

namespace mops {

class RotaryEmbedding {
 public:
  RotaryEmbedding(int head_dim, float theta);

  // x: (B, heads, S, D) at positions start .. start+S-1 -> (B, heads, S, D). Each pair is one
  // complex number, rotated by one complex product.
  torch::Tensor apply(const torch::Tensor& x, int64_t start) const;

 private:
  void grow_to(int64_t length) const;

  int head_dim_;
  double theta_;
  mutable torch::Tensor rotation_;  // (N, D/2) complex64: cos + i sin of each position's angles, on the last x's device
};

}  // namespace mops
