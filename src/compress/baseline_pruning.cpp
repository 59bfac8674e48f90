#include "baseline_pruning.h"

namespace mops {

torch::Tensor magnitude_prune(const torch::Tensor& weight, const SparsityPattern& pattern) {
  auto w = weight.detach().to(torch::kFloat32);
  auto scores = w.abs();  // (R, K)
  auto mask = pattern.is_nm() ? mask_nm(scores, pattern.n, pattern.m)
                              : mask_smallest(scores, removal_counts(pattern.sparsity, {w.numel()})[0]);
  return w.masked_fill(mask, 0.0);
}

torch::Tensor wanda_prune(const torch::Tensor& weight, const torch::Tensor& input_norms, const SparsityPattern& pattern) {
  auto w = weight.detach().to(torch::kFloat32);
  auto scores = w.abs() * input_norms.to(torch::kFloat32).unsqueeze(0);  // (R, K)
  auto mask = pattern.is_nm() ? mask_nm(scores, pattern.n, pattern.m) : mask_smallest_per_row(scores, pattern.sparsity);
  return w.masked_fill(mask, 0.0);
}

}  // namespace mops
