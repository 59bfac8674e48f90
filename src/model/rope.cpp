#include "rope.h"

#include "precision.h"

namespace mops {

RotaryEmbedding::RotaryEmbedding(int head_dim, float theta) : head_dim_(head_dim), theta_(theta) {
  grow_to(256);
}

void RotaryEmbedding::grow_to(int64_t length) const {
  if (rotation_.defined() && rotation_.size(0) >= length) return;
  const int64_t n = std::max<int64_t>(length, rotation_.defined() ? 2 * rotation_.size(0) : length);
  // Computed on the CPU in float64 for every device, so that all devices rotate by the same values.
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto pair = torch::arange(0, head_dim_ / 2, f64);                       // (D/2)
  auto inv_freq = torch::pow(theta_, -2.0 * pair / head_dim_);            // (D/2)
  auto angles = torch::outer(torch::arange(0, n, f64), inv_freq);         // (N, D/2)
  rotation_ = torch::complex(angles.cos().to(torch::kFloat32), angles.sin().to(torch::kFloat32));  // (N, D/2)
}

torch::Tensor RotaryEmbedding::apply(const torch::Tensor& x, int64_t start) const {
  const int64_t S = x.size(2);
  grow_to(start + S);
  if (rotation_.device() != x.device()) rotation_ = rotation_.to(x.device());  // the same values
  // A complex view of the pairs, in float32 whatever x's dtype (there is no bfloat16 complex):
  // the head dim is even, so the packed projections' slices have the even strides and offsets
  // it needs.
  auto pairs = torch::view_as_complex(at_least_float32(x).unflatten(-1, {head_dim_ / 2, 2}));  // (B, h, S, D/2)
  auto rotated = pairs * rotation_.slice(0, start, start + S);                // (B, h, S, D/2) complex
  return torch::view_as_real(rotated).flatten(-2).to(x.scalar_type());       // (B, h, S, D)
}

}  // namespace mops
