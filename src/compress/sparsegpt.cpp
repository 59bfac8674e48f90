#include "sparsegpt.h"

#include <algorithm>

#include "errors.h"

// Letters: R output rows, K input columns, B columns in a block.

namespace mops {

torch::Tensor inverse_hessian_factor(const torch::Tensor& gram, double dampening) {
  const int64_t K = gram.size(0);
  auto hessian = 2 * gram.to(torch::kFloat64);  // (K, K)
  auto diagonal = hessian.diagonal();
  diagonal.masked_fill_(diagonal == 0, 1.0);
  diagonal.add_(dampening * diagonal.mean().item<double>());
  auto [lower, info] = torch::linalg_cholesky_ex(hessian);
  MOPS_CHECK(info.item<int>() == 0, "the " << K << "x" << K << " Hessian of the calibration inputs is not positive "
                                          "definite; raise --dampening or give more calibration samples");
  auto inverse = torch::cholesky_inverse(lower);                  // H^-1 (K, K)
  return torch::linalg_cholesky(inverse, /*upper=*/true).to(torch::kFloat32);
}

torch::Tensor obs_fix_column(torch::Tensor& block, const torch::Tensor& factor, int64_t i,
                             const torch::Tensor& fixed) {
  auto err = (block.select(1, i) - fixed) / factor[i][i];  // (R)
  block.slice(1, i).sub_(err.unsqueeze(1).mm(factor[i].slice(0, i).unsqueeze(0)));
  block.select(1, i).copy_(fixed);
  return err;
}

namespace {

// Mask of the block's unstructured removals: the `count` smallest w^2 / U_jj^2.
torch::Tensor block_mask(const torch::Tensor& block, const torch::Tensor& factor, int64_t count) {
  auto scores = block.pow(2) / factor.diagonal().pow(2).unsqueeze(0);  // (R, B)
  return mask_smallest(scores, count);
}

// Prunes and updates one block in place; returns Err (R, B) for the later columns.
torch::Tensor prune_block(torch::Tensor& block, const torch::Tensor& factor, const SparsityPattern& pattern,
                          int64_t removals) {
  const int64_t R = block.size(0), B = block.size(1);
  auto mask = pattern.is_nm() ? torch::zeros({R, B}, block.options().dtype(torch::kBool))
                               : block_mask(block, factor, removals);  // (R, B)
  auto errors = torch::zeros({R, B}, block.options());                 // (R, B)
  for (int64_t i = 0; i < B; ++i) {
    if (pattern.is_nm() && i % pattern.m == 0) {
      auto group = block.slice(1, i, i + pattern.m);
      auto scores = group.pow(2) / factor.diagonal().slice(0, i, i + pattern.m).pow(2).unsqueeze(0);
      mask.slice(1, i, i + pattern.m).copy_(mask_nm(scores, pattern.n, pattern.m));
    }
    auto fixed = block.select(1, i).masked_fill(mask.select(1, i), 0.0);  // (R)
    errors.select(1, i).copy_(obs_fix_column(block, factor, i, fixed));
  }
  return errors;
}

}  // namespace

torch::Tensor sparsegpt_prune(const torch::Tensor& weight, const torch::Tensor& gram, const SparsityPattern& pattern,
                              const SparseGptOptions& options) {
  const int64_t R = weight.size(0), K = weight.size(1);
  MOPS_CHECK(gram.size(0) == K && gram.size(1) == K, "Hessian " << gram.sizes() << " does not match weights " << weight.sizes());
  MOPS_CHECK(options.block_size > 0 && (!pattern.is_nm() || options.block_size % pattern.m == 0),
             "--block-size " << options.block_size << " must be positive and a multiple of M = " << pattern.m);
  auto w = weight.detach().to(torch::kFloat32).clone();  // (R, K)
  auto dead = gram.diagonal() == 0;                       // (K)
  if (pattern.fraction() > 0) w.index_put_({torch::indexing::Slice(), dead}, 0.0);
  auto factor = inverse_hessian_factor(gram, options.dampening);  // (K, K)

  std::vector<int64_t> block_sizes;
  for (int64_t start = 0; start < K; start += options.block_size) {
    block_sizes.push_back(R * std::min<int64_t>(options.block_size, K - start));
  }
  const auto removals = removal_counts(pattern.sparsity, block_sizes);
  for (size_t b = 0; b < block_sizes.size(); ++b) {
    const int64_t start = int64_t(b) * options.block_size, end = std::min<int64_t>(start + options.block_size, K);
    auto block = w.slice(1, start, end).clone();                           // (R, B)
    auto block_factor = factor.slice(0, start, end).slice(1, start, end);  // (B, B)
    auto errors = prune_block(block, block_factor, pattern, removals[b]);
    w.slice(1, start, end).copy_(block);
    if (end < K) w.slice(1, end).sub_(errors.mm(factor.slice(0, start, end).slice(1, end)));
  }
  return w;
}

}  // namespace mops
