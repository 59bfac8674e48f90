// What pruning removes from a weight matrix W (R output rows, K input columns): a fraction of
// all its weights (unstructured), or N of every M consecutive input weights of each row (N:M,
// the SparseGPT paper's notation: 2:4 removes 2 of every 4, 50 %; 7:8 removes 87.5 %).
//
// Removal counts are exact to the weight: a matrix of R*K weights at sparsity s loses
// round(s * R * K) of them, spread over blocks or rows by cumulative rounding.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mops {

struct SparsityPattern {
  double sparsity = 0;  // unstructured fraction in [0, 1)
  int n = 0, m = 0;     // N:M when m > 0
  bool is_nm() const { return m > 0; }
  double fraction() const { return is_nm() ? double(n) / m : sparsity; }
  std::string describe() const;  // "75%" or "2:4"
};

// From the command line: --sparsity S in [0, 1), or --nm "N:M" with 0 < N < M.
SparsityPattern unstructured_pattern(double sparsity);
SparsityPattern parse_nm_pattern(const std::string& text);
// N:M needs M to divide the input width K of every matrix; throws naming `matrix`.
void check_pattern_fits(const SparsityPattern& pattern, int64_t input_width, const std::string& matrix);

// How many of the weights in parts of sizes `sizes` to remove so that the total is exactly
// round(sparsity * sum(sizes)), each part getting its cumulative-rounding share.
std::vector<int64_t> removal_counts(double sparsity, const std::vector<int64_t>& sizes);

// Masks (true = remove) over scores (R, K), lower score = removed first. Ties go to the lower index.
torch::Tensor mask_smallest(const torch::Tensor& scores, int64_t count);     // over all entries
torch::Tensor mask_smallest_per_row(const torch::Tensor& scores, double sparsity);  // exact total
torch::Tensor mask_nm(const torch::Tensor& scores, int n, int m);            // N of every M per row

}  // namespace mops
