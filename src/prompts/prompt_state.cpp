#include "prompt_state.h"

#include "errors.h"

namespace mops {

PromptMethod parse_prompt_method(const std::string& name) {
  if (name == "mop") return PromptMethod::kMop;
  if (name == "prompt") return PromptMethod::kPrompt;
  MOPS_FAIL("--method '" << name << "' is not one of mop, prompt (or both, where a command allows it)");
}

const char* method_name(PromptMethod method) { return method == PromptMethod::kMop ? "mop" : "prompt"; }

MopConfig MopConfig::resolved(const ModelConfig& backbone) const {
  MopConfig c = *this;
  const int L = backbone.n_layers;
  if (c.mid_layer < 0) c.mid_layer = L / 2;
  MOPS_CHECK(L >= 2 && c.mid_layer >= 1 && c.mid_layer <= L - 1,
             "--mid-layer " << c.mid_layer << " is outside [1, " << L - 1 << "] for a model of " << L << " layers");
  if (c.gate_layer < 0) c.gate_layer = c.mid_layer;
  MOPS_CHECK(c.gate_layer <= c.mid_layer,
             "--gate-layer " << c.gate_layer << " is outside [0, " << c.mid_layer << "]: the gate reads a layer at or "
                             << "below L_mid = " << c.mid_layer);
  MOPS_CHECK(c.first_prompt_count >= 1, "--first-prompts " << c.first_prompt_count << " must be at least 1");
  MOPS_CHECK(c.experts >= 1 && c.prompts_per_expert >= 1,
             "--experts and --prompts-per-expert must be at least 1 (got " << c.experts << ", " << c.prompts_per_expert << ")");
  MOPS_CHECK(c.gate_hidden >= 1, "--gate-hidden " << c.gate_hidden << " must be at least 1");
  MOPS_CHECK(c.gate_temperature > 0, "--gate-temperature " << c.gate_temperature << " must be positive");
  MOPS_CHECK(c.gate_top_k >= 0 && c.gate_top_k <= c.experts,
             "--gate-top-k " << c.gate_top_k << " is outside [0, " << c.experts << "] for " << c.experts
                             << " experts (0: all)");
  MOPS_CHECK(c.first_prompt_count + 1 <= backbone.max_seq_len && c.mid_prompt_count() + 1 <= backbone.max_seq_len,
             "prompts (" << c.first_prompt_count << " first, " << c.mid_prompt_count() << " mid) leave no room for tokens in "
                         << "max_seq_len " << backbone.max_seq_len);
  return c;
}

PromptStateImpl::PromptStateImpl(const MopConfig& config, int width, uint64_t seed) : config_(config) {
  first_prompts = register_parameter("first_prompts", torch::zeros({config.first_prompt_count, width}), false);
  mid_prompts = register_parameter("mid_prompts", torch::zeros({config.mid_prompt_count(), width}));
  if (config.method == PromptMethod::kMop) {
    gate = register_module("gate", Gate(width, config.gate_hidden, config.experts, config.prompts_per_expert, config.gate_scale,
                                     config.gate_temperature, config.gate_top_k, seed));
  }
}

}  // namespace mops
