#include "hf_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "checkpoint.h"
#include "errors.h"
#include "safetensors.h"

namespace mops {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const fs::path& path) {
  std::ifstream in(path);
  MOPS_CHECK(in, "cannot open '" << path.string() << "': " << std::strerror(errno));
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    MOPS_FAIL(path.string() << ": not valid JSON: " << e.what());
  }
}

template <class T>
T field(const json& j, const char* name, const std::string& source) {
  MOPS_CHECK(j.contains(name), source << ": lacks '" << name << "'");
  try {
    return j.at(name).get<T>();
  } catch (const json::exception& e) {
    MOPS_FAIL(source << ": field '" << name << "' has the wrong type: " << e.what());
  }
}

ModelConfig read_config(const fs::path& path) {
  const json j = read_json(path);
  const std::string source = path.string();
  if (j.contains("model_type")) {
    MOPS_CHECK(j["model_type"] == "llama", source << ": model_type " << j["model_type"] << " is not 'llama'");
  }
  MOPS_CHECK(!j.contains("rope_scaling") || j["rope_scaling"].is_null(),
             source << ": rope_scaling is not supported (plain RoPE only)");
  MOPS_CHECK(!j.contains("hidden_act") || j["hidden_act"] == "silu",
             source << ": hidden_act " << j["hidden_act"] << " is not 'silu'");
  ModelConfig c;
  c.dim = field<int>(j, "hidden_size", source);
  c.hidden_dim = field<int>(j, "intermediate_size", source);
  c.n_layers = field<int>(j, "num_hidden_layers", source);
  c.n_heads = field<int>(j, "num_attention_heads", source);
  c.n_kv_heads = j.contains("num_key_value_heads") ? field<int>(j, "num_key_value_heads", source) : c.n_heads;
  c.vocab_size = field<int>(j, "vocab_size", source);
  c.max_seq_len = field<int>(j, "max_position_embeddings", source);
  c.norm_eps = j.contains("rms_norm_eps") ? field<float>(j, "rms_norm_eps", source) : 1e-6f;
  c.rope_theta = j.contains("rope_theta") ? field<float>(j, "rope_theta", source) : 10000.0f;
  c.tied_classifier = j.contains("tie_word_embeddings") && field<bool>(j, "tie_word_embeddings", source);
  c.validate(source);
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    MOPS_CHECK(field<int>(j, "head_dim", source) == c.head_dim(),
               source << ": head_dim " << j["head_dim"] << " differs from hidden_size / num_attention_heads");
  }
  return c;
}

// Which safetensors file holds each tensor.
class ShardSet {
 public:
  explicit ShardSet(const fs::path& directory) {
    const auto index = directory / "model.safetensors.index.json";
    const auto single = directory / "model.safetensors";
    if (fs::exists(index)) {
      const json j = read_json(index);
      MOPS_CHECK(j.contains("weight_map") && j["weight_map"].is_object(),
                 index.string() << ": lacks a 'weight_map' object");
      for (const auto& [name, file] : j["weight_map"].items()) {
        MOPS_CHECK(file.is_string(), index.string() << ": weight_map['" << name << "'] is not a file name");
        const std::string file_name = file.get<std::string>();
        if (!readers_.count(file_name)) {
          MOPS_CHECK(fs::exists(directory / file_name),
                     index.string() << " lists shard '" << file_name << "' (for '" << name
                                    << "'), which does not exist in " << directory.string());
          readers_[file_name] = std::make_shared<SafetensorsReader>((directory / file_name).string());
        }
        owner_[name] = readers_[file_name];
      }
    } else {
      MOPS_CHECK(fs::exists(single), directory.string()
                                         << ": no model.safetensors or model.safetensors.index.json "
                                            "(PyTorch .bin checkpoints are not supported: save with safetensors)");
      auto reader = std::make_shared<SafetensorsReader>(single.string());
      for (const auto& name : reader->names()) owner_[name] = reader;
    }
  }

  torch::Tensor get(const std::string& name, const std::string& source) const {
    auto it = owner_.find(name);
    MOPS_CHECK(it != owner_.end(), source << ": missing tensor '" << name << "'");
    return it->second->float_tensor(name);
  }

 private:
  std::map<std::string, std::shared_ptr<SafetensorsReader>> readers_;
  std::map<std::string, std::shared_ptr<SafetensorsReader>> owner_;
};

}  // namespace

torch::Tensor unpermute_rotate_half(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1), half = rows / heads / 2;
  return w.view({heads, 2, half, cols}).transpose(1, 2).reshape({rows, cols});
}

Llama load_hf_checkpoint(const std::string& directory) {
  const fs::path dir(directory);
  const ModelConfig c = read_config(dir / "config.json");
  const ShardSet shards(dir);
  Llama model(c);
  ParameterFiller filler(model, directory);
  auto get = [&](const std::string& name) { return shards.get(name, directory); };
  // q/k rows are permuted per head, so their shape is checked before the permutation.
  auto get_rotary = [&](const std::string& name, int64_t heads) {
    auto w = get(name);
    MOPS_CHECK(w.dim() == 2 && w.size(0) == heads * c.head_dim() && w.size(1) == c.dim,
               directory << ": tensor '" << name << "' has shape " << w.sizes() << " but config.json implies ["
                         << heads * c.head_dim() << ", " << c.dim << "]");
    return unpermute_rotate_half(w, heads);
  };
  auto fill = [&](const std::string& ours, const std::string& name) { filler.fill(ours, get(name), name); };
  fill("tok_embeddings.weight", "model.embed_tokens.weight");
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string hf = "model.layers." + std::to_string(l) + ".";
    const std::string ours = "layers." + std::to_string(l) + ".";
    fill(ours + "attention_norm.weight", hf + "input_layernorm.weight");
    filler.fill(ours + "attention.wq.weight", get_rotary(hf + "self_attn.q_proj.weight", c.n_heads));
    filler.fill(ours + "attention.wk.weight", get_rotary(hf + "self_attn.k_proj.weight", c.n_kv_heads));
    fill(ours + "attention.wv.weight", hf + "self_attn.v_proj.weight");
    fill(ours + "attention.wo.weight", hf + "self_attn.o_proj.weight");
    fill(ours + "ffn_norm.weight", hf + "post_attention_layernorm.weight");
    fill(ours + "feed_forward.w1.weight", hf + "mlp.gate_proj.weight");
    fill(ours + "feed_forward.w2.weight", hf + "mlp.down_proj.weight");
    fill(ours + "feed_forward.w3.weight", hf + "mlp.up_proj.weight");
  }
  fill("norm.weight", "model.norm.weight");
  if (!c.tied_classifier) fill("output.weight", "lm_head.weight");
  filler.finish();
  return model;
}

}  // namespace mops
