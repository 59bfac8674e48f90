// The pruning baselines SparseGPT is compared with; neither updates the weights it keeps.
//   magnitude: removes the smallest |W| of the whole matrix (layer-wise), or of every M-group;
//   Wanda (Sun et al. 2023): removes the smallest |W_rj| * ||X_j||_2 within each output row,
//   or within every M-group of a row.
#pragma once
#include <torch/torch.h>

#include "sparsity_pattern.h"

namespace mops {

torch::Tensor magnitude_prune(const torch::Tensor& weight, const SparsityPattern& pattern);  // (R, K) -> (R, K)
// input_norms: (K) column norms of the calibration inputs.
torch::Tensor wanda_prune(const torch::Tensor& weight, const torch::Tensor& input_norms, const SparsityPattern& pattern);

}  // namespace mops
