#include "fedavg.h"

#include "errors.h"

namespace mops {
namespace {

// What the method trains, in PromptStateImpl::trained()'s order.
std::vector<torch::Tensor> averaged_tensors(PromptState& state) { return state->trained(); }

}  // namespace

int64_t averaged_values(PromptState& state) {
  int64_t n = 0;
  for (const auto& t : averaged_tensors(state)) n += t.numel();
  return n;
}

void add_client(PromptState& client, int64_t examples, torch::Tensor& sums) {
  MOPS_CHECK(sums.scalar_type() == torch::kDouble && sums.dim() == 1 && sums.size(0) > averaged_values(client),
             "FedAvg sums must be float64 (N + 1), got " << sums.scalar_type() << " " << sums.sizes());
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& t : averaged_tensors(client)) {
    sums.slice(0, offset, offset + t.numel()).add_(t.reshape(-1).to(sums.device(), torch::kDouble), double(examples));
    offset += t.numel();
  }
  sums[offset].add_(double(examples));
}

void assign_average(const torch::Tensor& sums, PromptState& global) {
  const int64_t n = averaged_values(global);
  const double total = sums[n].item<double>();
  MOPS_CHECK(total > 0, "FedAvg over clients with no training examples (sum of example counts is " << total << ")");
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (auto& t : averaged_tensors(global)) {
    t.copy_((sums.slice(0, offset, offset + t.numel()) / total).view(t.sizes()));
    offset += t.numel();
  }
}

void copy_averaged(PromptState& from, PromptState& to) {
  torch::NoGradGuard no_grad;
  auto source = averaged_tensors(from), target = averaged_tensors(to);
  for (size_t i = 0; i < source.size(); ++i) target[i].copy_(source[i]);
}

}  // namespace mops
