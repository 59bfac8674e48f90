#include "activation_cache.h"

#include <torch/cuda.h>

#include <iomanip>
#include <sstream>

#include "compute_device.h"
#include "errors.h"
#include "parse_number.h"
#include "prompted_forward.h"
#include "threads.h"

namespace mops {

ActivationCache::ActivationCache(int64_t budget_bytes, int64_t host_bytes)
    : budget_(budget_bytes), host_budget_(host_bytes) {
  MOPS_CHECK(budget_bytes >= 0 && host_bytes >= 0,
             "activation cache budgets " << budget_bytes << " and " << host_bytes << " bytes must be >= 0");
}

void ActivationCache::empty_if_stale(Llama& backbone, PromptState& state) {
  const auto& p0 = state->first_prompts;
  const auto& c = state->config();
  if (backbone_ == backbone.get() && mid_layer_ == c.mid_layer && gate_layer_ == c.gate_layer &&
      gate_route_ == c.gate_route && first_prompts_.defined() && first_prompts_.sizes() == p0.sizes() && torch::equal(first_prompts_, p0)) {
    return;
  }
  states_.clear();
  bytes_ = host_bytes_ = 0;
  backbone_ = backbone.get();
  mid_layer_ = c.mid_layer;
  gate_layer_ = c.gate_layer;
  gate_route_ = c.gate_route;
  first_prompts_ = p0.detach().clone();
}

namespace {

int64_t bytes_of(const LowerHalf& lower) {
  const auto hashed = lower.hashed_expert.defined() ? lower.hashed_expert.nbytes() : 0;
  return int64_t(lower.states.nbytes() + lower.gate_input.nbytes() + hashed);
}

// The same tensors on `device` (non-blocking from pinned memory); the hashed experts stay on the CPU.
LowerHalf on_device(const LowerHalf& lower, const torch::Device& device) {
  auto to = [&](const torch::Tensor& t) { return t.to(device, t.scalar_type(), /*non_blocking=*/true); };
  return {to(lower.states), to(lower.gate_input), lower.hashed_expert};
}

}  // namespace

void ActivationCache::store(const TokenizedExample* example, const LowerHalf& lower) {
  const int64_t size = bytes_of(lower);
  if (bytes_ + size <= budget_) {
    states_.emplace(example, lower);
    bytes_ += size;
  } else if (!lower.states.is_cpu() && host_bytes_ + size <= host_budget_) {
    // pinned: the copy back is asynchronous
    states_.emplace(example, LowerHalf{lower.states.to(torch::kCPU).pin_memory(),
                                       lower.gate_input.to(torch::kCPU).pin_memory(), lower.hashed_expert});
    host_bytes_ += size;
  }
}

LowerHalf ActivationCache::lower(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& examples,
                                 const std::vector<size_t>& indices) {
  if (budget_ == 0) {
    const auto batch = make_batch(examples, indices);
    return lower_half(backbone, state, batch.ids, batch.question_mask);
  }
  empty_if_stale(backbone, state);
  if (indices.size() == 1) return states_of(backbone, state, examples[indices[0]]);  // no padding to add
  const int64_t K0 = state->config().first_prompt_count;
  int64_t longest = 0;
  for (size_t i : indices) longest = std::max<int64_t>(longest, int64_t(examples[i].ids.size()));
  const auto options = backbone->tok_embeddings->weight.options();
  LowerHalf out;
  out.states = torch::zeros({int64_t(indices.size()), K0 + longest, int64_t(backbone->config().dim)}, options);  // (B, K0 + T, C)
  std::vector<torch::Tensor> gate_inputs, hashed;  // (1, C) and (1) each
  for (size_t b = 0; b < indices.size(); ++b) {
    const auto own = states_of(backbone, state, examples[indices[b]]);  // (1, K0 + T_i, C), (1, C)
    out.states[int64_t(b)].slice(0, 0, own.states.size(1)).copy_(own.states[0]);
    gate_inputs.push_back(own.gate_input);
    if (own.hashed_expert.defined()) hashed.push_back(own.hashed_expert);
  }
  out.gate_input = torch::cat(gate_inputs, 0);          // (B, C)
  if (!hashed.empty()) out.hashed_expert = torch::cat(hashed, 0);  // (B)
  return out;
}

LowerHalf ActivationCache::states_of(Llama& backbone, PromptState& state, const TokenizedExample& example) {
  const int64_t rows = state->config().first_prompt_count + int64_t(example.ids.size());
  const auto found = states_.find(&example);
  const auto device = backbone->device();
  if (found != states_.end() && found->second.states.size(1) == rows) {
    ++hits_;
    return on_device(found->second, device);
  }
  if (found != states_.end()) {  // another example now lives at this address
    (found->second.states.device() == device ? bytes_ : host_bytes_) -= bytes_of(found->second);
    states_.erase(found);
  }
  // Alone and unpadded, so that its states never depend on which examples it was first seen with.
  const auto batch = make_batch({example}, 0, 1);
  auto computed = lower_half(backbone, state, batch.ids, batch.question_mask);  // (1, K0 + T_i, C), (1, C)
  ++computed_;
  store(&example, computed);
  return computed;
}

std::string ActivationCache::describe() const {
  std::ostringstream out;
  const double mib = 1024.0 * 1024.0;
  out << "activation cache: ";
  if (budget_ == 0) return out.str() + "off";
  out << cached_examples() << " examples in " << std::fixed << std::setprecision(1) << bytes_ / mib << " of "
      << budget_ / mib << " MiB";
  if (host_budget_ > 0) out << " and " << host_bytes_ / mib << " of " << host_budget_ / mib << " MiB of host memory";
  out << "; " << hits_ << " lookups served from it, " << computed_ << " examples through the lower half";
  return out.str();
}

CacheBudget activation_cache_budget(const std::string& option, const torch::Device& device) {
  constexpr int64_t kMiB = 1024 * 1024;
  CacheBudget budget;
  if (option == "auto") {
    const int ranks = ranks_on_this_node();
    // Ranks on a node share its GPUs round robin (compute_device.h): this many share this one.
    const int gpus = device.is_cuda() ? std::max<int>(1, int(torch::cuda::device_count())) : 1;
    const int sharing = device.is_cuda() ? (ranks + gpus - 1) / gpus : ranks;
    const int64_t share = free_memory(device) / 4 / sharing;
    budget.device_bytes = share < 64 * kMiB ? 0 : share;
    if (device.is_cuda() && budget.device_bytes > 0) budget.host_bytes = free_memory(torch::kCPU) / 4 / ranks;
    return budget;
  }
  const auto mib = parse_non_negative(option);
  MOPS_CHECK(mib && *mib <= (int64_t(1) << 40) / kMiB,
             "--activation-cache '" << option << "' is not auto or a size in MiB in [0, 1048576] (0 = off)");
  budget.device_bytes = *mib * kMiB;
  return budget;
}

}  // namespace mops
