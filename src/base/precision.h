// The frozen backbone may run in bfloat16 (--dtype); norms, RoPE, softmax-losses and everything
// that trains compute in at least float32. `at_least_float32` widens 16-bit floats to float32 and
// returns any other tensor as it is (float32 stays float32, float64 stays float64: the
// finite-difference tests run in float64).
#pragma once
#include <torch/types.h>

namespace mops {

inline torch::Tensor at_least_float32(const torch::Tensor& x) {
  const auto type = x.scalar_type();
  return type == torch::kBFloat16 || type == torch::kHalf ? x.to(torch::kFloat32) : x;
}

}  // namespace mops
