// Second moments of a linear layer's inputs over calibration data: the Gram matrix
// X X^T = sum_i x_i x_i^T (K, K) in float64, from which SparseGPT takes its Hessian
// H = 2 X X^T, Wanda its column norms ||X_j||, and the reconstruction error its norm:
// ||(W - W') X||^2 = tr((W - W') X X^T (W - W')^T).
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace mops {

class InputStatistics {
 public:
  explicit InputStatistics(int64_t width);
  void add(const torch::Tensor& inputs);  // (..., K), any float dtype
  const torch::Tensor& gram() const { return gram_; }  // (K, K) float64
  int64_t count() const { return count_; }             // input vectors seen
  torch::Tensor column_norms() const;                  // (K) float32: ||X_j||_2

 private:
  torch::Tensor gram_;
  int64_t count_ = 0;
};

// ||W X - W' X|| / ||W X|| over the inputs summarised by `gram`; 0 when W X is 0.
double relative_reconstruction_error(const torch::Tensor& weight, const torch::Tensor& compressed,
                                     const torch::Tensor& gram);

}  // namespace mops
