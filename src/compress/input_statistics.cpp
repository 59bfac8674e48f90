#include "input_statistics.h"

#include <cmath>

#include "errors.h"

namespace mops {

InputStatistics::InputStatistics(int64_t width) : gram_(torch::zeros({width, width}, torch::kFloat64)) {}

void InputStatistics::add(const torch::Tensor& inputs) {
  const int64_t K = gram_.size(0);
  MOPS_CHECK(inputs.size(-1) == K, "calibration inputs have width " << inputs.size(-1) << ", expected " << K);
  auto x = inputs.detach().reshape({-1, K}).to(torch::kFloat64);  // (N, K)
  if (gram_.device() != x.device()) gram_ = gram_.to(x.device());  // accumulated where the inputs are
  gram_.addmm_(x.t(), x);
  count_ += x.size(0);
}

torch::Tensor InputStatistics::column_norms() const {
  return gram_.diagonal().clamp_min(0).sqrt().to(torch::kFloat32);
}

double relative_reconstruction_error(const torch::Tensor& weight, const torch::Tensor& compressed,
                                     const torch::Tensor& gram) {
  auto w = weight.to(torch::kFloat64);                  // (R, K)
  auto delta = w - compressed.to(torch::kFloat64);      // (R, K)
  const double reference = (w.mm(gram) * w).sum().item<double>();
  const double error = (delta.mm(gram) * delta).sum().item<double>();
  if (reference <= 0) return 0;
  return std::sqrt(std::max(error, 0.0) / reference);
}

}  // namespace mops
