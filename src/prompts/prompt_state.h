// What a method trains on top of the frozen backbone, for one run or one client:
//   P0:   K0 first-layer prompts, prepended at layer 0 (pretrained briefly, then frozen), every method;
//   mid:  E experts x P prompts, replacing the prompt positions at the input of layer L_mid
//         (MoPs and the prompt baseline);
//   gate: MoPs only; what it reads, computes and scales is gate.h;
//   adapters: LoRA, IA3 or prefix tuning (issue 18) in every layer >= L_mid (layer_adapter.h),
//         P0's states going on through those layers in the prompt positions (LoRA with
//         --lora-layers all: in every layer);
//   task factors: multitask prompt tuning (MPT, Wang et al. 2023, issue 18): the mid prompts are
//         one shared matrix, and example i of task t sees it times the rank-one matrix u_t v_t^T
//         (elementwise), t taken from the data's task labels in training and at test time.
// Every method but LoRA in all layers trains only above L_mid, so the layers below run without
// autograd for them.
//
// Letters: C width, K0 first prompts, E experts, P prompts per expert, r LoRA rank, T tasks, B batch.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "gate.h"
#include "layer_adapter.h"
#include "model_config.h"

namespace mops {

enum class PromptMethod { kMop, kPrompt, kLora, kIa3, kPrefix, kMpt };
const std::vector<PromptMethod>& prompt_methods();           // every one, in the enum's order
PromptMethod parse_prompt_method(const std::string& name);  // mop | prompt | lora | ia3 | prefix | mpt
const char* method_name(PromptMethod method);
// Whether the method replaces P0's positions at L_mid by the E x P mid prompts (MoPs, prompt, MPT).
bool uses_mid_prompts(PromptMethod method);

// The matrices LoRA may adapt, by their names in the backbone (llama.h).
const std::vector<std::string>& lora_target_names();
bool is_lora_target(const std::string& name);  // one of lora_target_names()

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
  int lora_rank = 8;                        // r
  double lora_alpha = 16;                   // the update's scale is alpha / r
  double lora_dropout = 0;                  // p of dropout on each update's input in training (PEFT's)
  std::vector<std::string> lora_targets = {"wq", "wv"};  // of lora_target_names()
  bool lora_all_layers = false;             // --lora-layers all: LoRA in every layer, not only >= L_mid
  int task_count = 0;                       // T: the data's tasks, MPT's task factors (at least 1 for it)

  int mid_prompt_count() const { return experts * prompts_per_expert; }
  // The prompt positions of the layers >= L_mid: E x P mid prompts, or P0's K0.
  int upper_prompt_count() const { return uses_mid_prompts(method) ? mid_prompt_count() : first_prompt_count; }
  // The first layer with an adapter: L_mid, or 0 for LoRA in all layers, whose lower half then
  // trains too (autograd below L_mid, no activation cache).
  int first_adapted_layer() const { return method == PromptMethod::kLora && lora_all_layers ? 0 : mid_layer; }
  bool trains_lower_half() const { return first_adapted_layer() < mid_layer; }
  // Resolves mid_layer against the backbone and checks every field; errors name the option.
  MopConfig resolved(const ModelConfig& backbone) const;
};

class PromptStateImpl : public torch::nn::Module {
 public:
  // Zero prompts; the gate (MoPs) initialised from `seed`; LoRA's A uniform in +-1/sqrt(fan-in)
  // (PEFT's default) from `seed` and B zero, IA3's vectors ones, so that either starts as the
  // frozen model with P0; prefix tuning's E x P keys and values per layer standard normal from
  // `seed` (PEFT's embedding init). `backbone` gives the layers and their widths.
  PromptStateImpl(const MopConfig& config, const ModelConfig& backbone, uint64_t seed = 0);

  const MopConfig& config() const { return config_; }
  const ModelConfig& backbone_config() const { return backbone_; }

  torch::Tensor first_prompts;  // (K0, C), frozen outside prompt pretraining
  torch::Tensor mid_prompts;    // (E * P, C), MoPs, prompt and MPT (its shared prompts)
  torch::Tensor task_rows;      // (T, E * P) MPT's u_t
  torch::Tensor task_columns;   // (T, C) MPT's v_t
  torch::Tensor task_centroids;  // (T, C) MoPs under --gate-route knn: each task's mean gate input over
                                 // the training examples (fit_task_centroids), not trained
  Gate gate{nullptr};           // MoPs only
  std::vector<LayerAdapter> adapters;  // one per backbone layer (empty below first_adapted_layer()), LoRA, IA3, prefix
  // What a run of the layers takes (LayerRun::adapters): `adapters`, or null for the prompt methods.
  const std::vector<LayerAdapter>* layer_adapters() const { return adapters.empty() ? nullptr : &adapters; }

  // The mid prompts each example sees, in `like`'s dtype: (E * P, C) the same for all, or for MPT
  // (B, E * P, C) those of each example's task (`tasks` (B) indexes the data's tasks). `like` is
  // (B, ..., C).
  torch::Tensor mid_prompts_for(const std::vector<int>& tasks, const torch::Tensor& like) const;

  // What the main loop trains and FedAvg averages, in a fixed order: the mid prompts, MPT's task
  // factors, the gate's parameters (when it routes: not under --gate-route hash or knn), then
  // the adapters' tensors layer by layer.
  std::vector<torch::Tensor> trained();
  std::vector<torch::Tensor> prompt_tensors();   // its first part: the mid prompts and MPT's task factors
  std::vector<torch::Tensor> adapter_tensors();  // its last part: the adapters'
  int64_t trained_values();  // their number of values: the method's trainable parameters

 private:
  MopConfig config_;
  ModelConfig backbone_;
};
TORCH_MODULE(PromptState);

}  // namespace mops
