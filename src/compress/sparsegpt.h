// SparseGPT (Frantar and Alistarh 2023): one-shot pruning of a weight matrix W (R, K) that
// keeps W X close to the dense output on calibration inputs X (K, N).
//
//   H = 2 X X^T + lambda I, lambda = dampening * mean(diag(2 X X^T))
//   U = upper Cholesky factor of H^-1 (so row i of U carries the inverse Hessian of the
//       columns i.. that are still free once columns < i are fixed)
//   for each block of B columns:  choose the mask (unstructured: the round(s * R * B)
//       smallest w^2 / U_jj^2 in the block; N:M: the N smallest of every M columns, chosen
//       when the group is reached), then column by column
//       q = w with masked entries zeroed,
//       err = (w - q) / U_ii, and the optimal-brain-surgeon update W[:, i:] -= err U[i, i:]
//       inside the block; after it, the later columns get -= Err U[block, later].
// Columns whose input is always zero (diag H = 0) carry no information: their weights are
// removed first.
#pragma once
#include <torch/torch.h>

#include "sparsity_pattern.h"

namespace mops {

struct SparseGptOptions {
  int block_size = 128;     // B: columns per block (a multiple of M for N:M)
  double dampening = 0.01;  // lambda as a fraction of the mean diagonal of H
};

// Returns the pruned weights (R, K) float32; `gram` is X X^T (K, K).
torch::Tensor sparsegpt_prune(const torch::Tensor& weight, const torch::Tensor& gram, const SparsityPattern& pattern,
                              const SparseGptOptions& options);

// The upper Cholesky factor U of (2 gram + lambda I)^-1: (K, K) float32. Columns with a zero
// diagonal get H_jj = 1. Throws when H is not positive definite even after dampening.
torch::Tensor inverse_hessian_factor(const torch::Tensor& gram, double dampening);

// One OBS step inside a block: fixes column i of `block` (R, B) to `fixed` (R), updates the
// columns after it with U = `factor` (B, B), and returns err = (w_i - fixed) / U_ii (R).
torch::Tensor obs_fix_column(torch::Tensor& block, const torch::Tensor& factor, int64_t i,
                             const torch::Tensor& fixed);

}  // namespace mops
