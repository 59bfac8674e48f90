// The header of llama2.c's legacy (v0) export: 7 little-endian int32 fields, dim,
// hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: untied classifier) and
// seq_len, then float32 weights whose size the fields determine. Torch-free (it is fuzzed).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "model_config.h"

namespace mops {

constexpr std::size_t kLlama2cHeaderBytes = 28;

// `head` holds the first head_size bytes of a file of file_size bytes. Throws mops::Error
// naming path and the bad field.
ModelConfig parse_llama2c_header(const std::string& path, const char* head, std::size_t head_size,
                                 std::uint64_t file_size);

// The same checks without the path: why the file is no llama2.c v0 export, or empty when it is
// one (then `config` is its config).
std::string llama2c_header_problem(const char* head, std::size_t head_size, std::uint64_t file_size,
                                   ModelConfig& config);

}  // namespace mops
