// What MoPs and its baseline train on top of the frozen backbone, for one run or one client:
//   P0:   K0 first-layer prompts, prepended at layer 0 (pretrained briefly, then frozen);
//   mid:  E experts x P prompts, replacing the prompt positions at the input of layer L_mid;
//   gate: on the mean layer-L_mid hidden state of the question tokens, softmax over E
//         (MoPs only). Its output scales, in every layer >= L_mid and every head, the
//         attention probabilities to expert e's P prompt columns by G_e (`paper`, as Algorithm 1
//         writes it) or by E * G_e (`experts`: a uniform gate is then exactly the baseline).
//
// Letters: C width, K0 first prompts, E experts, P prompts per expert.
#pragma once
#include <torch/torch.h>

#include <string>

#include "gate.h"
#include "model_config.h"

namespace mops {

enum class PromptMethod { kMop, kPrompt };
enum class GateScale { kPaper, kExperts };
PromptMethod parse_prompt_method(const std::string& name);  // mop | prompt
GateScale parse_gate_scale(const std::string& name);        // paper | experts
const char* method_name(PromptMethod method);
const char* gate_scale_name(GateScale scale);

struct MopConfig {
  PromptMethod method = PromptMethod::kMop;
  int first_prompts = 10;       // K0
  int experts = 7;              // E
  int prompts_per_expert = 10;  // P
  int mid_layer = -1;           // L_mid; -1: L / 2
  int gate_hidden = 32;
  GateScale gate_scale = GateScale::kExperts;

  int mid_prompts() const { return experts * prompts_per_expert; }
  // Resolves mid_layer against the backbone and checks every field; errors name the option.
  MopConfig resolved(const ModelConfig& backbone) const;
};

class PromptStateImpl : public torch::nn::Module {
 public:
  // Zero prompts; the gate (MoPs) initialised from `seed`.
  PromptStateImpl(const MopConfig& config, int width, uint64_t seed = 0);

  const MopConfig& config() const { return config_; }
  // Gate output (B, E) -> per-column weights of the E * P mid prompt columns (B, E * P).
  torch::Tensor column_weights(const torch::Tensor& gate) const;

  torch::Tensor first_prompts;  // (K0, C), frozen outside prompt pretraining
  torch::Tensor mid_prompts;    // (E * P, C)
  Gate gate{nullptr};           // MoPs only

 private:
  MopConfig config_;
};
TORCH_MODULE(PromptState);

}  // namespace mops
