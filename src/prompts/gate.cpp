#include "gate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "errors.h"

namespace mops {

GateImpl::GateImpl(int width, int hidden, int experts, uint64_t seed) {
  w1 = register_module("w1", torch::nn::Linear(width, hidden));
  w2 = register_module("w2", torch::nn::Linear(hidden, experts));
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto* layer : {&w1, &w2}) {
    const double bound = 1.0 / std::sqrt(double((*layer)->weight.size(1)));
    (*layer)->weight.uniform_(-bound, bound, gen);
    (*layer)->bias.uniform_(-bound, bound, gen);
  }
}

torch::Tensor GateImpl::logits(const torch::Tensor& hidden, const torch::Tensor& question_mask) {
  return w2(torch::relu(w1(question_mean(hidden, question_mask))));  // (B, E)
}

torch::Tensor GateImpl::forward(const torch::Tensor& hidden, const torch::Tensor& question_mask) {
  return torch::softmax(logits(hidden, question_mask), -1);  // (B, E)
}

torch::Tensor question_mean(const torch::Tensor& hidden, const torch::Tensor& question_mask) {
  auto mask = question_mask.to(hidden.device(), hidden.scalar_type());  // (B, T)
  auto counts = mask.sum(1, /*keepdim=*/true);             // (B, 1)
  MOPS_CHECK((counts > 0).all().item<bool>(),
             "an example has no question tokens (empty instruction and context): the gate has nothing to read");
  return (hidden * mask.unsqueeze(-1)).sum(1) / counts;   // (B, C)
}

}  // namespace mops
