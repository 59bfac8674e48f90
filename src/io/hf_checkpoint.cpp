#include "hf_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "atomic_file.h"
#include "checkpoint.h"
#include "errors.h"
#include "hf_config.h"
#include "safetensors.h"

namespace mops {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  MOPS_CHECK(in, "cannot open '" << path.string() << "': " << std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// One tensor of the checkpoint and the parameter it fills.
struct HfTensor {
  std::string name;            // in the checkpoint
  std::string parameter;       // in Llama
  std::vector<int64_t> shape;  // as config.json implies
  int64_t rope_heads = 0;      // > 0: q/k rows to permute back from rotate-half, in this many heads
};

// Every tensor a Hugging Face Llama of config `c` has (C, F, V: sizes; H, G: heads; D: head dim).
std::vector<HfTensor> hf_tensors(const ModelConfig& c) {
  const int64_t C = c.dim, F = c.hidden_dim, V = c.vocab_size, H = c.n_heads, G = c.n_kv_heads, D = c.head_dim();
  std::vector<HfTensor> tensors = {{"model.embed_tokens.weight", "tok_embeddings.weight", {V, C}}};
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string hf = "model.layers." + std::to_string(l) + ".", ours = "layers." + std::to_string(l) + ".";
    tensors.push_back({hf + "input_layernorm.weight", ours + "attention_norm.weight", {C}});
    tensors.push_back({hf + "self_attn.q_proj.weight", ours + "attention.wq.weight", {H * D, C}, H});
    tensors.push_back({hf + "self_attn.k_proj.weight", ours + "attention.wk.weight", {G * D, C}, G});
    tensors.push_back({hf + "self_attn.v_proj.weight", ours + "attention.wv.weight", {G * D, C}});
    tensors.push_back({hf + "self_attn.o_proj.weight", ours + "attention.wo.weight", {C, C}});
    tensors.push_back({hf + "post_attention_layernorm.weight", ours + "ffn_norm.weight", {C}});
    tensors.push_back({hf + "mlp.gate_proj.weight", ours + "feed_forward.w1.weight", {F, C}});
    tensors.push_back({hf + "mlp.down_proj.weight", ours + "feed_forward.w2.weight", {C, F}});
    tensors.push_back({hf + "mlp.up_proj.weight", ours + "feed_forward.w3.weight", {F, C}});
  }
  tensors.push_back({"model.norm.weight", "norm.weight", {C}});
  if (!c.tied_classifier) tensors.push_back({"lm_head.weight", "output.weight", {V, C}});
  return tensors;
}

// Which safetensors file holds each tensor: model.safetensors, or the shards of
// model.safetensors.index.json, which must list every tensor of every shard exactly once.
class ShardSet {
 public:
  explicit ShardSet(const fs::path& directory) {
    const fs::path index = directory / "model.safetensors.index.json", single = directory / "model.safetensors";
    if (!fs::exists(index)) {
      MOPS_CHECK(fs::exists(single), directory.string()
                                         << ": no model.safetensors or model.safetensors.index.json "
                                            "(PyTorch .bin checkpoints are not supported: save with safetensors)");
      auto reader = std::make_shared<SafetensorsReader>(single.string());
      for (const auto& name : reader->names()) owner_[name] = reader;
      return;
    }
    const auto weight_map = parse_hf_index(index.string(), read_text(index));
    std::map<std::string, std::shared_ptr<SafetensorsReader>> shards;
    for (const auto& [name, shard] : weight_map) {
      auto& reader = shards[shard];
      if (!reader) {
        MOPS_CHECK(fs::exists(directory / shard), index.string() << " lists shard '" << shard << "' (for '" << name
                                                                 << "'), which does not exist in "
                                                                 << directory.string());
        reader = std::make_shared<SafetensorsReader>((directory / shard).string());
      }
      MOPS_CHECK(reader->contains(name), index.string() << " puts tensor '" << name << "' in shard '" << shard
                                                        << "', which does not hold it");
      owner_[name] = reader;
    }
    for (const auto& [shard, reader] : shards)
      for (const auto& name : reader->names()) {
        const auto listed = weight_map.find(name);
        MOPS_CHECK(listed != weight_map.end() && listed->second == shard,
                   reader->path() << ": holds tensor '" << name << "', which " << index.string()
                                  << (listed == weight_map.end() ? " does not list"
                                                                 : " puts in shard '" + listed->second + "'"));
      }
  }

  // Every tensor of `expected` is there with its shape, and nothing else is.
  void check(const std::vector<HfTensor>& expected, const std::string& source) const {
    std::map<std::string, bool> used;
    for (const auto& [name, reader] : owner_) used[name] = false;
    for (const HfTensor& t : expected) {
      const auto it = owner_.find(t.name);
      MOPS_CHECK(it != owner_.end(), source << ": missing tensor '" << t.name << "'");
      const auto shape = it->second->shape(t.name);
      MOPS_CHECK(shape == t.shape, it->second->path() << ": tensor '" << t.name << "' has shape "
                                                      << c10::IntArrayRef(shape) << " but config.json implies "
                                                      << c10::IntArrayRef(t.shape));
      used[t.name] = true;
    }
    std::string unused;  // rotary_emb.inv_freq (older exports) is recomputed, so it may be there
    for (const auto& [name, done] : used)
      if (!done && name.find(".rotary_emb.inv_freq") == std::string::npos) unused += (unused.empty() ? "" : ", ") + name;
    MOPS_CHECK(unused.empty(), source << ": tensors a Llama of this config.json does not have: " << unused);
  }

  torch::Tensor get(const std::string& name) const { return owner_.at(name)->float_tensor(name); }

 private:
  std::map<std::string, std::shared_ptr<SafetensorsReader>> owner_;
};

}  // namespace

torch::Tensor unpermute_rotate_half(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1), half = rows / heads / 2;
  return w.view({heads, 2, half, cols}).transpose(1, 2).reshape({rows, cols});
}

torch::Tensor permute_rotate_half(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1), half = rows / heads / 2;
  return w.reshape({heads, half, 2, cols}).transpose(1, 2).reshape({rows, cols});
}

void save_hf_checkpoint(Llama& model, const std::string& directory) {
  const auto& c = model->config();
  std::map<std::string, torch::Tensor> ours;
  for (const auto& item : model->named_parameters()) ours[item.key()] = item.value().detach();
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const HfTensor& t : hf_tensors(c)) {
    const auto w = ours.at(t.parameter).to(torch::kCPU, torch::kFloat32);
    tensors.emplace_back(t.name, (t.rope_heads > 0 ? permute_rotate_half(w, t.rope_heads) : w).contiguous());
  }
  write_safetensors((fs::path(directory) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  const auto config = hf_config_json(c);
  write_file_atomically((fs::path(directory) / "config.json").string(), config.data(), config.size());
}

// Shapes are checked against config.json before the model is allocated.
Llama load_hf_checkpoint(const std::string& directory) {
  const fs::path config = fs::path(directory) / "config.json";
  const ModelConfig c = parse_hf_config(config.string(), read_text(config));
  const ShardSet shards{fs::path(directory)};
  const std::vector<HfTensor> tensors = hf_tensors(c);
  shards.check(tensors, directory);
  Llama model(c);
  ParameterFiller filler(model, directory);
  for (const HfTensor& t : tensors) {
    const torch::Tensor w = shards.get(t.name);  // t.shape
    filler.fill(t.parameter, t.rope_heads > 0 ? unpermute_rotate_half(w, t.rope_heads) : w, t.name);
  }
  filler.finish();
  return model;
}

}  // namespace mops
