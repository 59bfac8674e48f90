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
  if (backbone_ == backbone.get() && mid_layer_ == state->config().mid_layer && first_prompts_.defined() &&
      first_prompts_.sizes() == p0.sizes() && torch::equal(first_prompts_, p0)) {
    return;
  }
  states_.clear();
  bytes_ = host_bytes_ = 0;
  backbone_ = backbone.get();
  mid_layer_ = state->config().mid_layer;
  first_prompts_ = p0.detach().clone();
}

void ActivationCache::store(const TokenizedExample* example, const torch::Tensor& states) {
  const int64_t size = int64_t(states.nbytes());
  if (bytes_ + size <= budget_) {
    states_.emplace(example, states);
    bytes_ += size;
  } else if (!states.is_cpu() && host_bytes_ + size <= host_budget_) {
    states_.emplace(example, states.to(torch::kCPU).pin_memory());  // pinned: the copy back is asynchronous
    host_bytes_ += size;
  }
}

torch::Tensor ActivationCache::lower(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& examples,
                                     const std::vector<size_t>& indices) {
  if (budget_ == 0) return lower_half(backbone, state, make_batch(examples, indices).ids);
  empty_if_stale(backbone, state);
  if (indices.size() == 1) return states_of(backbone, state, examples[indices[0]]).unsqueeze(0);  // no padding to add
  const int64_t K0 = state->config().first_prompt_count;
  int64_t longest = 0;
  for (size_t i : indices) longest = std::max<int64_t>(longest, int64_t(examples[i].ids.size()));
  const auto options = backbone->tok_embeddings->weight.options();
  auto out = torch::zeros({int64_t(indices.size()), K0 + longest, int64_t(backbone->config().dim)}, options);  // (B, K0 + T, C)
  for (size_t b = 0; b < indices.size(); ++b) {
    const auto own = states_of(backbone, state, examples[indices[b]]);  // (K0 + T_i, C)
    out[int64_t(b)].slice(0, 0, own.size(0)).copy_(own);
  }
  return out;
}

torch::Tensor ActivationCache::states_of(Llama& backbone, PromptState& state, const TokenizedExample& example) {
  const int64_t rows = state->config().first_prompt_count + int64_t(example.ids.size());
  const auto found = states_.find(&example);
  const auto device = backbone->device();
  if (found != states_.end() && found->second.size(0) == rows) {
    ++hits_;
    return found->second.to(device, found->second.scalar_type(), /*non_blocking=*/true);
  }
  if (found != states_.end()) {  // another example now lives at this address
    (found->second.device() == device ? bytes_ : host_bytes_) -= int64_t(found->second.nbytes());
    states_.erase(found);
  }
  // Alone and unpadded, so that its states never depend on which examples it was first seen with.
  const auto ids = torch::tensor(example.ids, torch::kLong).unsqueeze(0);  // (1, T_i)
  auto computed = lower_half(backbone, state, ids)[0];                      // (K0 + T_i, C)
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
