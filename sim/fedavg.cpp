#include "fedavg.h"

#include "errors.h"

namespace mops {

// FedAvg averages what the method trains, in PromptStateImpl::trained()'s order.
int64_t averaged_values(PromptState& state) { return state->trained_values(); }

void add_client(PromptState& client, int64_t examples, torch::Tensor& sums) {
  MOPS_CHECK(sums.scalar_type() == torch::kDouble && sums.dim() == 1 && sums.size(0) > averaged_values(client),
             "FedAvg sums must be float64 (N + 1), got " << sums.scalar_type() << " " << sums.sizes());
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& t : client->trained()) {
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
  for (auto& t : global->trained()) {
    t.copy_((sums.slice(0, offset, offset + t.numel()) / total).view(t.sizes()));
    offset += t.numel();
  }
}

void copy_averaged(PromptState& from, PromptState& to) {
  torch::NoGradGuard no_grad;
  auto source = from->trained(), target = to->trained();
  for (size_t i = 0; i < source.size(); ++i) target[i].copy_(source[i]);
}

}  // namespace mops
