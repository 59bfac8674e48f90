// Int8 weights: symmetric, per output channel, round to nearest. Row r of W (R, K) is stored
// as int8 values q in [-127, 127] and one float32 scale s_r = max_k |W_rk| / 127, and
// computed with as q * s_r, so each weight moves by at most half a step s_r / 2.
#pragma once
#include <torch/torch.h>

namespace mops {

struct Int8Weight {
  torch::Tensor values;  // (R, K) int8
  torch::Tensor scales;  // (R) float32
  torch::Tensor dequantize() const;  // (R, K) float32: values * scales
};

// (R, K) -> (R): max |W_r| / 127, or 1 for an all-zero row.
torch::Tensor int8_scales(const torch::Tensor& weight);
// Round-to-nearest with the scales of `weight` itself; zeros stay zero.
Int8Weight quantize_int8(const torch::Tensor& weight);

}  // namespace mops
