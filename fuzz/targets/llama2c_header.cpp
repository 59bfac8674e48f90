// Fuzz target (b): the llama2.c (legacy v0) header reader (parse_llama2c_header in
// src/io/llama2c_header.cpp). Input: the file's first bytes (up to the 28-byte header: 7 int32
// dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (< 0: untied), seq_len), then, when
// given, 8 bytes little-endian: the file size the reader is told (otherwise the input's size).
// Invariants of an accepted config: ModelConfig::validate passes, every field positive and as in
// the header, tied = vocab field > 0, and the file size is exactly the header plus the float32
// weights and RoPE tables the fields imply (computed here independently, in 128-bit); the
// path-free llama2c_header_problem agrees.
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "fuzz_target.h"
#include "llama2c_header.h"

namespace {

using u128 = unsigned __int128;

// Bytes of a llama2.c v0 file (llama2.c run.c's memory_map_weights, shared_weights = tied).
u128 implied_bytes(const std::int32_t* h) {
  const u128 C = h[0], F = h[1], L = h[2], H = h[3], G = h[4], T = h[6];
  const u128 V = static_cast<u128>(h[5] < 0 ? -static_cast<std::int64_t>(h[5]) : h[5]);
  const u128 D = C / H, kv = G * D;
  u128 floats = V * C;                        // token embedding
  floats += L * C;                            // rms_att
  floats += L * C * C + 2 * L * C * kv + L * C * C;  // wq, wk, wv, wo
  floats += L * C;                            // rms_ffn
  floats += 3 * L * C * F;                    // w1, w2, w3
  floats += C;                                // rms_final
  floats += T * (D / 2) * 2;                  // freq_cis_real, freq_cis_imag
  if (h[5] < 0) floats += V * C;              // wcls
  return 28 + 4 * floats;
}

int one_input(const std::uint8_t* data, std::size_t size) {
  const std::size_t head_size = size < mops::kLlama2cHeaderBytes ? size : mops::kLlama2cHeaderBytes;
  std::vector<char> head(data, data + head_size);  // exactly head_size bytes, for ASan
  std::uint64_t file_size = size;
  if (size >= mops::kLlama2cHeaderBytes + 8) {
    file_size = 0;
    for (int i = 7; i >= 0; --i) file_size = (file_size << 8) | data[mops::kLlama2cHeaderBytes + i];
  }
  mops::ModelConfig config;
  bool accepted = true;
  try {
    config = mops::parse_llama2c_header("fuzz.bin", head.empty() ? nullptr : head.data(), head_size, file_size);
  } catch (const mops::Error&) {
    accepted = false;  // rejected: expected for bad input
  }
  mops::ModelConfig again;
  const std::string problem =
      mops::llama2c_header_problem(head.empty() ? nullptr : head.data(), head_size, file_size, again);
  MOPS_FUZZ_ASSERT(problem.empty() == accepted);
  if (!accepted) return 0;

  MOPS_FUZZ_ASSERT(head_size == mops::kLlama2cHeaderBytes);
  std::int32_t h[7];
  std::memcpy(h, head.data(), sizeof(h));
  try {
    config.validate("fuzz.bin");
  } catch (const mops::Error&) {
    MOPS_FUZZ_ASSERT(!"accepted config fails ModelConfig::validate");
  }
  MOPS_FUZZ_ASSERT(config.dim == h[0] && config.hidden_dim == h[1] && config.n_layers == h[2] &&
                   config.n_heads == h[3] && config.n_kv_heads == h[4] && config.max_seq_len == h[6]);
  MOPS_FUZZ_ASSERT(config.tied_classifier == (h[5] > 0));
  MOPS_FUZZ_ASSERT(static_cast<std::int64_t>(config.vocab_size) ==
                   (h[5] < 0 ? -static_cast<std::int64_t>(h[5]) : h[5]));
  MOPS_FUZZ_ASSERT(implied_bytes(h) == file_size);
  MOPS_FUZZ_ASSERT(again.dim == config.dim && again.vocab_size == config.vocab_size &&
                   again.tied_classifier == config.tied_classifier);
  // The parameter count the loader and `mops info` print fits in int64.
  MOPS_FUZZ_ASSERT(config.parameter_count() > 0);
  return 0;
}

}  // namespace

MOPS_FUZZ_TARGET(llama2c_header, one_input)
