#include "peft_export.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "atomic_file.h"
#include "errors.h"
#include "hf_checkpoint.h"
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

const LowRankUpdate& update_of(const LayerAdapter& a, const std::string& target) {
  if (target == "wq") return a.wq;
  if (target == "wk") return a.wk;
  if (target == "wv") return a.wv;
  if (target == "wo") return a.wo;
  if (target == "w1") return a.w1;
  if (target == "w2") return a.w2;
  return a.w3;
}

torch::Tensor float_cpu(const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat32).contiguous(); }

void write_adapter(const fs::path& dir, const nlohmann::json& config,
                   const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  fs::create_directories(dir);
  write_safetensors((dir / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  const auto text = config.dump(2) + "\n";
  write_file_atomically((dir / "adapter_config.json").string(), text.data(), text.size());
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
  std::vector<std::string> written = {prompt_dir.string()};
  if (c.method != PromptMethod::kLora) return written;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::vector<int> layers;
  std::vector<std::string> modules;
  for (int l = c.first_adapted_layer(); l < m.n_layers; ++l) {
    layers.push_back(l);
    for (const auto& target : lora_target_names()) {
      if (std::find(c.lora_targets.begin(), c.lora_targets.end(), target) == c.lora_targets.end()) continue;
      const auto& update = update_of(state->adapters[size_t(l)], target);
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
