#include "peft_export.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "atomic_file.h"
#include "errors.h"
#include "hf_checkpoint.h"
#include "prompt_state_io.h"
#include "safetensors.h"

namespace mops {
namespace {

namespace fs = std::filesystem;

// Hugging Face's module of a LoRA target, and the heads its rows come in when RoPE permutes them.
struct HfModule {
  std::string path;        // under model.layers.L.
  int64_t rope_heads = 0;  // > 0: q/k rows, permuted to rotate-half
};

HfModule hf_module(const std::string& target, const ModelConfig& m) {
  if (target == "wq") return {"self_attn.q_proj", m.n_heads};
  if (target == "wk") return {"self_attn.k_proj", m.n_kv_heads};
  if (target == "wv") return {"self_attn.v_proj"};
  if (target == "wo") return {"self_attn.o_proj"};
  if (target == "w1") return {"mlp.gate_proj"};
  if (target == "w3") return {"mlp.up_proj"};
  return {"mlp.down_proj"};  // w2
}

torch::Tensor float_cpu(const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat32).contiguous(); }

void write_adapter(const fs::path& dir, const nlohmann::json& config,
                   const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  fs::create_directories(dir);
  write_safetensors((dir / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  const auto text = config.dump(2) + "\n";
  write_file_atomically((dir / "adapter_config.json").string(), text.data(), text.size());
}

// DIR/mops: the whole state and what it is.
std::string save_own_format(PromptState& state, const fs::path& dir) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  nlohmann::json shapes;
  for (const auto& item : state->named_parameters()) {
    tensors.emplace_back(item.key(), float_cpu(item.value()));
    shapes[item.key()] = item.value().sizes().vec();
  }
  write_safetensors((dir / "state.safetensors").string(), tensors, {{"format", "mops-prompt-state/1"}});
  const nlohmann::json config = {
      {"format", "mops-prompt-state/1"},
      {"prompt_config", nlohmann::json::parse(mop_config_json(state->config()))},
      {"backbone", nlohmann::json::parse(state->backbone_config().to_json())},
      {"tensors", shapes},
      {"layout",
       "first_prompts (K0, C): in front of the token embeddings at layer 0, positions 0..K0-1; mid_prompts (E P, C): "
       "in P0's place at the input of layer mid_layer, positions 0..E P-1 (MPT: times mpt_task_rows[t] (E P) outer "
       "mpt_task_columns[t] (C) for task t); gate.w1/w2 (MoPs): softmax(w2 relu(w1 x)) over E experts, x the mean "
       "state of the question tokens at the input of gate_layer, expert e's attention columns scaled by E G_e "
       "(gate_scale experts) or G_e (paper) in every layer >= mid_layer; task_centroids (T, C): knn routing; "
       "layerL_*: LoRA, IA3 and prefix tensors of layer L (README, HDF5 schema); q/k rows in the interleaved-pair "
       "RoPE layout of mops' own format (mops convert --to hf permutes them)"}};
  const auto text = config.dump(2) + "\n";
  write_file_atomically((dir / "config.json").string(), text.data(), text.size());
  return dir.string();
}

}  // namespace

std::vector<std::string> save_peft_adapters(PromptState& state, const std::string& directory) {
  const auto& c = state->config();
  const auto& m = state->backbone_config();
  const fs::path dir = directory;
  const auto prompt_dir = dir / "prompt_tuning";
  write_adapter(prompt_dir,
                {{"peft_type", "PROMPT_TUNING"}, {"task_type", "CAUSAL_LM"}, {"num_virtual_tokens", c.first_prompt_count},
                 {"token_dim", m.dim}, {"num_transformer_submodules", 1}, {"num_attention_heads", m.n_heads},
                 {"num_layers", m.n_layers}, {"prompt_tuning_init", "RANDOM"}, {"inference_mode", true}},
                {{"prompt_embeddings", float_cpu(state->first_prompts)}});
  std::vector<std::string> written = {prompt_dir.string(), save_own_format(state, dir / "mops")};
  if (c.method != PromptMethod::kLora) return written;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::vector<int> layers;
  std::vector<std::string> modules;
  for (int l = c.first_adapted_layer(); l < m.n_layers; ++l) {
    layers.push_back(l);
    for (const auto& target : lora_target_names()) {
      if (std::find(c.lora_targets.begin(), c.lora_targets.end(), target) == c.lora_targets.end()) continue;
      const auto& update = state->adapters[size_t(l)].update(target);
      const auto module = hf_module(target, m);
      const auto prefix = "base_model.model.model.layers." + std::to_string(l) + "." + module.path;
      const auto b = float_cpu(update.b);  // (out, r)
      tensors.emplace_back(prefix + ".lora_A.weight", float_cpu(update.a));
      tensors.emplace_back(prefix + ".lora_B.weight",
                           module.rope_heads > 0 ? permute_rotate_half(b, module.rope_heads).contiguous() : b);
      const auto name = module.path.substr(module.path.find('.') + 1);
      if (l == c.first_adapted_layer()) modules.push_back(name);
    }
  }
  const auto lora_dir = dir / "lora";
  write_adapter(lora_dir,
                {{"peft_type", "LORA"}, {"task_type", "CAUSAL_LM"}, {"r", c.lora_rank}, {"lora_alpha", c.lora_alpha},
                 {"lora_dropout", c.lora_dropout}, {"target_modules", modules}, {"layers_to_transform", layers},
                 {"bias", "none"}, {"fan_in_fan_out", false}, {"inference_mode", true}},
                tensors);
  written.push_back(lora_dir.string());
  return written;
}

}  // namespace mops
