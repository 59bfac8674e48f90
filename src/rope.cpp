#include "rope.h"

namespace mops {

RotaryEmbedding::RotaryEmbedding(int head_dim, float theta) : head_dim_(head_dim), theta_(theta) {
  grow_to(256);
}

void RotaryEmbedding::grow_to(int64_t length) const {
  if (cos_.defined() && cos_.size(0) >= length) return;
  const int64_t n = std::max<int64_t>(length, cos_.defined() ? 2 * cos_.size(0) : length);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto pair = torch::arange(0, head_dim_ / 2, f64);                       // (D/2)
  auto inv_freq = torch::pow(theta_, -2.0 * pair / head_dim_);            // (D/2)
  auto angles = torch::outer(torch::arange(0, n, f64), inv_freq);         // (N, D/2)
  cos_ = angles.cos().to(torch::kFloat32);
  sin_ = angles.sin().to(torch::kFloat32);
}

torch::Tensor RotaryEmbedding::apply(const torch::Tensor& x, int64_t start) const {
  const int64_t S = x.size(2);
  grow_to(start + S);
  auto cos = cos_.slice(0, start, start + S);                // (S, D/2)
  auto sin = sin_.slice(0, start, start + S);                // (S, D/2)
  auto pairs = x.unflatten(-1, {head_dim_ / 2, 2});          // (B, h, S, D/2, 2)
  auto a = pairs.select(-1, 0);                              // (B, h, S, D/2)
  auto b = pairs.select(-1, 1);                              // (B, h, S, D/2)
  auto rotated_a = a * cos - b * sin;
  auto rotated_b = a * sin + b * cos;
  return torch::stack({rotated_a, rotated_b}, -1).flatten(-2);  // (B, h, S, D)
}

}  // namespace mops
