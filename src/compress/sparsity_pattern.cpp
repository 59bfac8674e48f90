#include "sparsity_pattern.h"

#include <cmath>
#include <sstream>

#include "errors.h"

namespace mops {

std::string SparsityPattern::describe() const {
  std::ostringstream text;
  if (is_nm()) {
    text << n << ":" << m;
  } else {
    text << sparsity * 100 << "%";
  }
  return text.str();
}

SparsityPattern unstructured_pattern(double sparsity) {
  MOPS_CHECK(sparsity >= 0 && sparsity < 1,
             "--sparsity " << sparsity << " is outside [0, 1): give the fraction of weights to remove, e.g. 0.75");
  SparsityPattern pattern;
  pattern.sparsity = sparsity;
  return pattern;
}

SparsityPattern parse_nm_pattern(const std::string& text) {
  SparsityPattern pattern;
  char colon = 0;
  std::istringstream in(text);
  const bool parsed = bool(in >> pattern.n >> colon >> pattern.m) && colon == ':' && in.peek() == EOF;
  MOPS_CHECK(parsed, "--nm '" << text << "' is not of the form N:M (N removed of every M weights, e.g. 2:4)");
  MOPS_CHECK(pattern.n > 0 && pattern.m > 0 && pattern.n < pattern.m,
             "--nm " << text << ": need 0 < N < M (N of every M weights are removed; 2:4 removes half)");
  return pattern;
}

void check_pattern_fits(const SparsityPattern& pattern, int64_t input_width, const std::string& matrix) {
  MOPS_CHECK(!pattern.is_nm() || input_width % pattern.m == 0,
             "--nm " << pattern.describe() << ": M = " << pattern.m << " does not divide the input width " << input_width
                     << " of " << matrix << "; choose an M that divides it (4 and 8 divide every width that is a "
                     << "multiple of 8)");
}

std::vector<int64_t> removal_counts(double sparsity, const std::vector<int64_t>& sizes) {
  std::vector<int64_t> counts;
  int64_t seen = 0, removed = 0;
  for (int64_t size : sizes) {
    seen += size;
    const int64_t target = std::llround(sparsity * double(seen));
    counts.push_back(target - removed);
    removed = target;
  }
  return counts;
}

torch::Tensor mask_smallest(const torch::Tensor& scores, int64_t count) {
  auto flat = scores.reshape({-1});
  auto mask = torch::zeros({flat.numel()}, flat.options().dtype(torch::kBool));
  if (count > 0) {
    auto order = std::get<1>(flat.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));
    mask.index_fill_(0, order.slice(0, 0, count), true);
  }
  return mask.view(scores.sizes());
}

torch::Tensor mask_smallest_per_row(const torch::Tensor& scores, double sparsity) {
  const int64_t R = scores.size(0), K = scores.size(1);
  const auto counts = removal_counts(sparsity, std::vector<int64_t>(R, K));
  auto order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false));  // (R, K)
  auto rank = torch::empty_like(order).scatter_(1, order, torch::arange(K, order.options()).expand({R, K}).contiguous());
  auto limit = torch::tensor(counts, torch::kLong).to(scores.device()).view({R, 1});  // (R, 1)
  return rank < limit;
}

torch::Tensor mask_nm(const torch::Tensor& scores, int n, int m) {
  const int64_t R = scores.size(0), K = scores.size(1);
  auto groups = scores.reshape({R, K / m, m});  // (R, K/M, M)
  auto order = std::get<1>(groups.sort(/*stable=*/true, /*dim=*/2, /*descending=*/false));
  auto mask = torch::zeros({R, K / m, m}, groups.options().dtype(torch::kBool));
  mask.scatter_(2, order.slice(2, 0, n), true);
  return mask.view({R, K});
}

}  // namespace mops
