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
        const std::string file_name = file.get<std::string>();
        if (!readers_.count(file_name)) {
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
  filler.fill("tok_embeddings.weight", get("model.embed_tokens.weight"));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string hf = "model.layers." + std::to_string(l) + ".";
    const std::string ours = "layers." + std::to_string(l) + ".";
    filler.fill(ours + "attention_norm.weight", get(hf + "input_layernorm.weight"));
    filler.fill(ours + "attention.wq.weight", unpermute_rotate_half(get(hf + "self_attn.q_proj.weight"), c.n_heads));
    filler.fill(ours + "attention.wk.weight", unpermute_rotate_half(get(hf + "self_attn.k_proj.weight"), c.n_kv_heads));
    filler.fill(ours + "attention.wv.weight", get(hf + "self_attn.v_proj.weight"));
    filler.fill(ours + "attention.wo.weight", get(hf + "self_attn.o_proj.weight"));
    filler.fill(ours + "ffn_norm.weight", get(hf + "post_attention_layernorm.weight"));
    filler.fill(ours + "feed_forward.w1.weight", get(hf + "mlp.gate_proj.weight"));
    filler.fill(ours + "feed_forward.w2.weight", get(hf + "mlp.down_proj.weight"));
    filler.fill(ours + "feed_forward.w3.weight", get(hf + "mlp.up_proj.weight"));
  }
  filler.fill("norm.weight", get("model.norm.weight"));
  if (!c.tied_classifier) filler.fill("output.weight", get("lm_head.weight"));
  filler.finish();
  return model;
}

}  // namespace mops
