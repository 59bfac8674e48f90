#include "activation_cache.h"

#include <fstream>
#include <iomanip>
#include <sstream>

#include "errors.h"
#include "prompted_forward.h"
#include "threads.h"

namespace mops {

ActivationCache::ActivationCache(int64_t budget_bytes) : budget_(budget_bytes) {
  MOPS_CHECK(budget_bytes >= 0, "activation cache budget " << budget_bytes << " bytes must be >= 0");
}

void ActivationCache::empty_if_stale(Llama& backbone, PromptState& state) {
  const auto& p0 = state->first_prompts;
  if (backbone_ == backbone.get() && first_prompts_.defined() && first_prompts_.sizes() == p0.sizes() &&
      torch::equal(first_prompts_, p0)) {
    return;
  }
  states_.clear();
  bytes_ = 0;
  backbone_ = backbone.get();
  first_prompts_ = p0.detach().clone();
}

void ActivationCache::store(const TokenizedExample* example, const torch::Tensor& states) {
  const int64_t size = states.numel() * int64_t(states.element_size());
  if (bytes_ + size > budget_) return;
  states_.emplace(example, states.clone());
  bytes_ += size;
}

torch::Tensor ActivationCache::lower(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& examples,
                                     const std::vector<size_t>& indices) {
  empty_if_stale(backbone, state);
  const int64_t K0 = state->config().first_prompts;
  // The examples not cached run through the lower half together, as one padded batch.
  std::vector<size_t> missing;
  for (size_t i : indices) {
    if (!states_.count(&examples[i]) && std::find(missing.begin(), missing.end(), i) == missing.end()) {
      missing.push_back(i);
    }
  }
  std::unordered_map<size_t, torch::Tensor> fresh;  // index -> (K0 + T_i, C), this call only
  if (!missing.empty()) {
    const auto computed = lower_half(backbone, state, make_batch(examples, missing).ids);  // (M, K0 + Tm, C)
    for (size_t m = 0; m < missing.size(); ++m) {
      const auto* example = &examples[missing[m]];
      auto own = computed[int64_t(m)].slice(0, 0, K0 + int64_t(example->ids.size()));  // (K0 + T_i, C)
      fresh.emplace(missing[m], own);
      store(example, own);
    }
    computed_ += int64_t(missing.size());
  }
  int64_t longest = 0;
  for (size_t i : indices) longest = std::max<int64_t>(longest, int64_t(examples[i].ids.size()));
  const auto options = backbone->tok_embeddings->weight.options();
  auto out = torch::zeros({int64_t(indices.size()), K0 + longest, int64_t(backbone->config().dim)}, options);  // (B, K0 + T, C)
  for (size_t b = 0; b < indices.size(); ++b) {
    const auto found = fresh.find(indices[b]);
    const auto& own = found != fresh.end() ? found->second : states_.at(&examples[indices[b]]);
    if (found == fresh.end()) ++hits_;
    out[int64_t(b)].slice(0, 0, own.size(0)).copy_(own);
  }
  return out;
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
  size_t used = 0;
  long long mib = -1;
  try {
    mib = std::stoll(option, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  MOPS_CHECK(used == option.size() && mib >= 0 && mib <= (int64_t(1) << 40) / kMiB,
             "--activation-cache '" << option << "' is not auto or a size in MiB in [0, 1048576] (0 = off)");
  return mib * kMiB;
}

}  // namespace mops
