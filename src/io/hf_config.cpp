#include "hf_config.h"

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>

#include "errors.h"
#include "strict_json.h"

namespace mops {
namespace {

using nlohmann::json;

json parse_object(const std::string& path, const std::string& text) {
  json j = parse_strict_json(path, text.data(), text.data() + text.size());
  MOPS_CHECK(j.is_object(), path << ": is a JSON " << j.type_name() << ", expected an object");
  return j;
}

// Absent and null both mean "not given".
bool given(const json& j, const char* name) { return j.contains(name) && !j.at(name).is_null(); }

int positive_int(const json& j, const char* name, const std::string& path) {
  MOPS_CHECK(given(j, name), path << ": lacks '" << name << "'");
  const json& v = j.at(name);
  MOPS_CHECK(v.is_number_integer() && v.get<int64_t>() >= 1 && v.get<int64_t>() <= std::numeric_limits<int>::max(),
             path << ": field '" << name << "' is " << v.dump() << ", expected a positive integer up to "
                  << std::numeric_limits<int>::max());
  return v.get<int>();
}

float positive_float(const json& j, const char* name, float fallback, const std::string& path) {
  if (!given(j, name)) return fallback;
  const json& v = j.at(name);
  MOPS_CHECK(v.is_number() && v.get<double>() <= std::numeric_limits<float>::max() && v.get<float>() > 0,
             path << ": field '" << name << "' is " << v.dump() << ", expected a positive number");
  return v.get<float>();
}

// A field that, when given, must be `expected`, because of `why`.
void require_if_given(const json& j, const char* name, const json& expected, const std::string& path,
                      const char* why) {
  MOPS_CHECK(!given(j, name) || j.at(name) == expected,
             path << ": field '" << name << "' is " << j.at(name).dump() << ", expected " << expected.dump()
                  << " (" << why << ")");
}

}  // namespace

ModelConfig parse_hf_config(const std::string& path, const std::string& json_text) {
  const json j = parse_object(path, json_text);
  require_if_given(j, "model_type", "llama", path, "only Llama models are supported");
  require_if_given(j, "hidden_act", "silu", path, "the feed-forward layer is SwiGLU with SiLU");
  require_if_given(j, "attention_bias", false, path, "the projections have no biases");
  require_if_given(j, "mlp_bias", false, path, "the projections have no biases");
  MOPS_CHECK(!given(j, "rope_scaling"), path << ": rope_scaling is not supported (plain RoPE only)");
  ModelConfig c;
  c.dim = positive_int(j, "hidden_size", path);
  c.hidden_dim = positive_int(j, "intermediate_size", path);
  c.n_layers = positive_int(j, "num_hidden_layers", path);
  c.n_heads = positive_int(j, "num_attention_heads", path);
  c.n_kv_heads = given(j, "num_key_value_heads") ? positive_int(j, "num_key_value_heads", path) : c.n_heads;
  c.vocab_size = positive_int(j, "vocab_size", path);
  c.max_seq_len = positive_int(j, "max_position_embeddings", path);
  c.norm_eps = positive_float(j, "rms_norm_eps", 1e-6f, path);
  c.rope_theta = positive_float(j, "rope_theta", 10000.0f, path);
  if (given(j, "tie_word_embeddings")) {
    MOPS_CHECK(j.at("tie_word_embeddings").is_boolean(),
               path << ": field 'tie_word_embeddings' is " << j.at("tie_word_embeddings").dump()
                    << ", expected true or false");
  }
  c.tied_classifier = given(j, "tie_word_embeddings") && j.at("tie_word_embeddings").get<bool>();
  c.validate(path);
  MOPS_CHECK(!given(j, "head_dim") || positive_int(j, "head_dim", path) == c.head_dim(),
             path << ": head_dim " << j.at("head_dim").dump() << " differs from hidden_size / num_attention_heads = "
                  << c.head_dim());
  return c;
}

std::map<std::string, std::string> parse_hf_index(const std::string& path, const std::string& json_text) {
  const json j = parse_object(path, json_text);
  MOPS_CHECK(j.contains("weight_map") && j.at("weight_map").is_object(), path << ": lacks a 'weight_map' object");
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, file] : j.at("weight_map").items()) {
    MOPS_CHECK(file.is_string(), path << ": weight_map['" << name << "'] is a JSON " << file.type_name()
                                      << ", expected a shard file name");
    const std::string shard = file.get<std::string>();
    MOPS_CHECK(!shard.empty() && shard != "." && shard.find('/') == std::string::npos &&
                   shard.find("..") == std::string::npos && shard.find('\0') == std::string::npos,
               path << ": weight_map['" << name << "'] is " << file.dump()
                    << ", not a plain file name (shards must lie in the checkpoint's directory)");
    weight_map[name] = shard;
  }
  MOPS_CHECK(!weight_map.empty(), path << ": weight_map is empty");
  return weight_map;
}

namespace {

// The double that prints as `f`'s shortest decimal form (1e-5f as 1e-05, not 9.99999974e-06).
double shortest(float f) {
  char text[32];
  for (int digits = 6; digits <= 9; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, double(f));
    if (std::strtof(text, nullptr) == f) break;
  }
  return std::strtod(text, nullptr);
}

}  // namespace

std::string hf_config_json(const ModelConfig& c) {
  const nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                            {"model_type", "llama"},
                            {"hidden_act", "silu"},
                            {"hidden_size", c.dim},
                            {"intermediate_size", c.hidden_dim},
                            {"num_hidden_layers", c.n_layers},
                            {"num_attention_heads", c.n_heads},
                            {"num_key_value_heads", c.n_kv_heads},
                            {"vocab_size", c.vocab_size},
                            {"max_position_embeddings", c.max_seq_len},
                            {"rms_norm_eps", shortest(c.norm_eps)},
                            {"rope_theta", shortest(c.rope_theta)},
                            {"tie_word_embeddings", c.tied_classifier},
                            {"attention_bias", false},
                            {"mlp_bias", false},
                            {"bos_token_id", 1},
                            {"eos_token_id", 2},
                            {"torch_dtype", "float32"}};
  return j.dump(2) + "\n";
}

}  // namespace mops
