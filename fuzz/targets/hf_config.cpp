// Fuzz target (c): the Hugging Face checkpoint metadata readers (src/io/hf_config.cpp) on the input
// as JSON text: parse_hf_config (config.json) and parse_hf_index (model.safetensors.index.json),
// and also ModelConfig::from_json (the model config stored in the project's own checkpoints).
// Invariants of an accepted config: ModelConfig::validate passes, every size positive, heads
// dividing dim and kv heads dividing heads, an even head dim, norm_eps and rope_theta finite and
// positive. Of an accepted index: a non-empty weight map whose shard names are plain file names
// (not empty, no '/', no "..", no NUL).
#include <cmath>
#include <map>
#include <string>

#include "errors.h"
#include "fuzz_target.h"
#include "hf_config.h"
#include "model_config.h"

namespace {

void check_config(const mops::ModelConfig& c) {
  try {
    c.validate("fuzz/config.json");
  } catch (const mops::Error&) {
    MOPS_FUZZ_ASSERT(!"accepted config fails ModelConfig::validate");
  }
  MOPS_FUZZ_ASSERT(c.dim > 0 && c.hidden_dim > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
                   c.vocab_size > 0 && c.max_seq_len > 0);
  MOPS_FUZZ_ASSERT(c.dim % c.n_heads == 0 && c.n_heads % c.n_kv_heads == 0 && c.head_dim() % 2 == 0);
  MOPS_FUZZ_ASSERT(std::isfinite(c.norm_eps) && c.norm_eps > 0);
  MOPS_FUZZ_ASSERT(std::isfinite(c.rope_theta) && c.rope_theta > 0);
}

int one_input(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    check_config(mops::parse_hf_config("fuzz/config.json", text));
  } catch (const mops::Error&) {
    // rejected: expected for bad input
  }
  try {
    const std::map<std::string, std::string> weight_map =
        mops::parse_hf_index("fuzz/model.safetensors.index.json", text);
    MOPS_FUZZ_ASSERT(!weight_map.empty());
    for (const auto& [name, shard] : weight_map) {
      MOPS_FUZZ_ASSERT(!shard.empty() && shard != "." && shard != "..");
      MOPS_FUZZ_ASSERT(shard.find('/') == std::string::npos && shard.find("..") == std::string::npos);
      MOPS_FUZZ_ASSERT(shard.find('\0') == std::string::npos);
    }
  } catch (const mops::Error&) {
  }
  try {
    check_config(mops::ModelConfig::from_json(text, "fuzz/model_config.json"));
  } catch (const mops::Error&) {
  }
  return 0;
}

}  // namespace

MOPS_FUZZ_TARGET(hf_config, one_input)
