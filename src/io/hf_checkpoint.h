// Hugging Face Llama checkpoints: config.json plus model.safetensors, or shards listed in
// model.safetensors.index.json. Tensors may be F32, F16 or BF16 (computed in float32).
// Hugging Face permutes q_proj/k_proj rows for rotate-half RoPE; they are permuted back to
// the interleaved-pair layout this project uses on reading, and forth on writing.
#pragma once
#include <string>

#include "llama.h"

namespace mops {

Llama load_hf_checkpoint(const std::string& directory);

// Rows of a q/k projection from Hugging Face's rotate-half layout to interleaved pairs.
// w: (heads * D, C) -> (heads * D, C)
torch::Tensor unpermute_rotate_half(const torch::Tensor& w, int64_t heads);
// Its inverse: interleaved pairs to the rotate-half rows transformers expects.
torch::Tensor permute_rotate_half(const torch::Tensor& w, int64_t heads);

// `model` as a Hugging Face Llama directory: config.json (hf_config_json) and a float32
// model.safetensors, each written atomically; `directory` must exist.
void save_hf_checkpoint(Llama& model, const std::string& directory);

}  // namespace mops
