#include "activation_cache.h"

#include <fstream>
#include <iomanip>
#include <sstream>

#include "command_start.h"
#include "errors.h"
#include "prompted_forward.h"
#include "threads.h"

namespace mops {

ActivationCache::ActivationCache(int64_t budget_bytes) : budget_(budget_bytes) {
  MOPS_CHECK(budget_bytes >= 0, "activation cache budget " << budget_bytes << " bytes must be >= 0");
}

void ActivationCache::empty_if_stale(Llama& backbone, PromptState& state) {
  const auto& p0 = state->first_prompts;
  if (backbone_ == backbone.get() && mid_layer_ == state->config().mid_layer && first_prompts_.defined() &&
      first_prompts_.sizes() == p0.sizes() && torch::equal(first_prompts_, p0)) {
    return;
  }
  states_.clear();
  bytes_ = 0;
  backbone_ = backbone.get();
  mid_layer_ = state->config().mid_layer;
  first_prompts_ = p0.detach().clone();
}

void ActivationCache::store(const TokenizedExample* example, const torch::Tensor& states) {
  const int64_t size = int64_t(states.nbytes());
  if (bytes_ + size > budget_) return;
  states_.emplace(example, states);
  bytes_ += size;
}

torch::Tensor ActivationCache::lower(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& examples,
                                     const std::vector<size_t>& indices) {
  if (budget_ == 0) return lower_half(backbone, state, make_batch(examples, indices).ids);
  empty_if_stale(backbone, state);
  if (indices.size() == 1) return states_of(backbone, state, examples[indices[0]]).unsqueeze(0);  // no padding to add
  const int64_t K0 = state->config().first_prompts;
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
  const int64_t rows = state->config().first_prompts + int64_t(example.ids.size());
  const auto found = states_.find(&example);
  if (found != states_.end() && found->second.size(0) == rows) {
    ++hits_;
    return found->second;
  }
  if (found != states_.end()) {  // another example now lives at this address
    bytes_ -= int64_t(found->second.nbytes());
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
      << budget_ / mib << " MiB; " << hits_ << " lookups served from it, " << computed_
      << " examples through the lower half";
  return out.str();
}

namespace {

// MemAvailable from /proc/meminfo in bytes; 0 when it cannot be read.
int64_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

}  // namespace

int64_t activation_cache_budget(const std::string& option) {
  constexpr int64_t kMiB = 1024 * 1024;
  if (option == "auto") {
    const int64_t share = available_memory() / 4 / ranks_on_this_node();
    return share < 64 * kMiB ? 0 : share;
  }
  const auto mib = parse_non_negative(option);
  MOPS_CHECK(mib && *mib <= (int64_t(1) << 40) / kMiB,
             "--activation-cache '" << option << "' is not auto or a size in MiB in [0, 1048576] (0 = off)");
  return *mib * kMiB;
}

}  // namespace mops
