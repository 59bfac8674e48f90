// Hugging Face Llama checkpoint metadata: config.json and model.safetensors.index.json,
// parsed and checked field by field. Torch-free (it is fuzzed).
#pragma once
#include <map>
#include <string>

#include "model_config.h"

namespace mops {

// config.json: every field type- and range-checked; errors name `path` and the field.
ModelConfig parse_hf_config(const std::string& path, const std::string& json_text);

// model.safetensors.index.json's weight_map: tensor name -> shard file name. Shard names must
// be plain file names (no '/', no '..'), every value a string.
std::map<std::string, std::string> parse_hf_index(const std::string& path, const std::string& json_text);

// The config.json of a Hugging Face LlamaForCausalLM (float32) with the shape of `c`; what
// parse_hf_config reads back as `c`.
std::string hf_config_json(const ModelConfig& c);

}  // namespace mops
