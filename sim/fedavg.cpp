#include "fedavg.h"

#include "errors.h"

namespace mops {
namespace {

// Mid prompts first, then the gate's parameters in registration order.
std::vector<torch::Tensor> averaged_tensors(PromptState& state) {
  std::vector<torch::Tensor> tensors = {state->mid_prompts};
  if (state->gate) {
    for (auto& p : state->gate->parameters()) tensors.push_back(p);
  }
  return tensors;
}

}  // namespace

int64_t averaged_values(PromptState& state) {
  int64_t n = 0;
  for (const auto& t : averaged_tensors(state)) n += t.numel();
  return n;
}

void add_client(PromptState& client, int64_t examples, double* sums) {
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& t : averaged_tensors(client)) {
    auto target = torch::from_blob(sums + offset, {t.numel()}, torch::kDouble);  // (numel)
    target.add_(t.reshape(-1).to(torch::kDouble), double(examples));
    offset += t.numel();
  }
  sums[offset] += double(examples);
}

void assign_average(const double* sums, PromptState& global) {
  const int64_t n = averaged_values(global);
  const double total = sums[n];
  MOPS_CHECK(total > 0, "FedAvg over clients with no training examples (sum of example counts is " << total << ")");
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (auto& t : averaged_tensors(global)) {
    auto sum = torch::from_blob(const_cast<double*>(sums) + offset, t.sizes(), torch::kDouble);
    t.copy_(sum / total);
    offset += t.numel();
  }
}

void copy_averaged(PromptState& from, PromptState& to) {
  torch::NoGradGuard no_grad;
  auto source = averaged_tensors(from), target = averaged_tensors(to);
  for (size_t i = 0; i < source.size(); ++i) target[i].copy_(source[i]);
}

}  // namespace mops
