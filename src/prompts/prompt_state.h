// What MoPs and its baseline train on top of the frozen backbone, for one run or one client:
//   P0:   K0 first-layer prompts, prepended at layer 0 (pretrained briefly, then frozen);
//   mid:  E experts x P prompts, replacing the prompt positions at the input of layer L_mid;
//   gate: MoPs only; what it reads, computes and scales is gate.h.
//
// Letters: C width, K0 first prompts, E experts, P prompts per expert.
#pragma once
#include <torch/torch.h>

#include <string>

#include "gate.h"
#include "model_config.h"

namespace mops {

enum class PromptMethod { kMop, kPrompt };
PromptMethod parse_prompt_method(const std::string& name);  // mop | prompt
const char* method_name(PromptMethod method);

struct MopConfig {
  PromptMethod method = PromptMethod::kMop;
  int first_prompt_count = 10;  // K0
  int experts = 7;              // E
  int prompts_per_expert = 10;  // P
  int mid_layer = -1;           // L_mid; -1: L / 2
  int gate_layer = -1;          // the layer whose input the gate reads (gate.h): 0 to L_mid; -1: L_mid
  int gate_hidden = 32;
  GateScale gate_scale = GateScale::kExperts;
  double gate_temperature = 1.0;  // tau of the gate's softmax (gate.h)
  int gate_top_k = 0;             // experts kept per example (gate.h); 0: all (the paper)
  GateRoute gate_route = GateRoute::kGate;  // the gate's output, or the hash control (gate.h)

  int mid_prompt_count() const { return experts * prompts_per_expert; }
  // Resolves mid_layer against the backbone and checks every field; errors name the option.
  MopConfig resolved(const ModelConfig& backbone) const;
};

class PromptStateImpl : public torch::nn::Module {
 public:
  // Zero prompts; the gate (MoPs) initialised from `seed`.
  PromptStateImpl(const MopConfig& config, int width, uint64_t seed = 0);

  const MopConfig& config() const { return config_; }

  torch::Tensor first_prompts;  // (K0, C), frozen outside prompt pretraining
  torch::Tensor mid_prompts;    // (E * P, C)
  Gate gate{nullptr};           // MoPs only

 private:
  MopConfig config_;
};
TORCH_MODULE(PromptState);

}  // namespace mops
