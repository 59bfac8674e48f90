// llama2.c's legacy (v0) export: 7 int32 header fields then float32 weights, matrices stored
// as (out, in); RoPE on interleaved pairs, as this project computes it.
#pragma once
#include <string>

#include "llama.h"

namespace mops {

Llama load_llama2c_checkpoint(const std::string& path);

}  // namespace mops
