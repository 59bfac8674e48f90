#include "llama2c_header.h"

#include <cstdlib>
#include <cstring>

#include "errors.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "llama2.c files are little-endian");

namespace mops {
namespace {

constexpr int32_t kVersionedMagic = 0x616b3432;  // "ak42": llama2.c export versions >= 1

struct Field {
  const char* name;
  int64_t limit;  // far above any real model, so that the size arithmetic cannot overflow
};
constexpr Field kFields[7] = {{"dim", 1 << 17},      {"hidden_dim", 1 << 17}, {"n_layers", 1024},
                              {"n_heads", 1024},     {"n_kv_heads", 1024},    {"vocab_size", 1 << 22},
                              {"seq_len", 1 << 22}};

// Bytes the file of `c` takes: header, weights and the unused RoPE tables. Below 2^50 within
// the fields' limits.
std::uint64_t expected_bytes(const ModelConfig& c) {
  const std::uint64_t C = c.dim, F = c.hidden_dim, L = c.n_layers, V = c.vocab_size, kv = c.kv_dim();
  std::uint64_t floats = V * C + L * C * 2 + L * (C * C * 2 + C * kv * 2) + L * C * F * 3 + C;
  floats += std::uint64_t(c.max_seq_len) * c.head_dim();  // freq_cis real + imaginary halves
  if (!c.tied_classifier) floats += V * C;
  return kLlama2cHeaderBytes + floats * 4;
}

}  // namespace

std::string llama2c_header_problem(const char* head, std::size_t head_size, std::uint64_t file_size,
                                   ModelConfig& config) {
  if (head_size < kLlama2cHeaderBytes || file_size < kLlama2cHeaderBytes)
    return "truncated: shorter than the 28-byte llama2.c header";
  int32_t value[7];
  std::memcpy(value, head, sizeof(value));
  if (value[0] == kVersionedMagic)
    return "this is a versioned llama2.c export (magic 'ak42'); only the legacy v0 format is supported: "
           "export with llama2.c's export.py --version 0";
  for (int i = 0; i < 7; ++i) {
    const int64_t size = i == 5 ? std::abs(int64_t(value[i])) : value[i];  // vocab_size < 0: untied
    if (size < 1 || size > kFields[i].limit)
      return std::string("header field ") + kFields[i].name + " is " + std::to_string(value[i]) + ", expected 1 to " +
             std::to_string(kFields[i].limit) + (i == 5 ? " or its negative" : "") + " (not a llama2.c v0 file)";
  }
  ModelConfig c;
  c.dim = value[0];
  c.hidden_dim = value[1];
  c.n_layers = value[2];
  c.n_heads = value[3];
  c.n_kv_heads = value[4];
  c.vocab_size = std::abs(value[5]);
  c.max_seq_len = value[6];
  c.tied_classifier = value[5] > 0;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  const std::string fields = "(dim " + std::to_string(c.dim) + ", n_heads " + std::to_string(c.n_heads) +
                             ", n_kv_heads " + std::to_string(c.n_kv_heads) + ")";
  if (c.n_heads % c.n_kv_heads != 0) return "header field n_kv_heads does not divide n_heads " + fields;
  if (c.dim % c.n_heads != 0) return "header field dim is not divisible by n_heads " + fields;
  if (c.head_dim() % 2 != 0)
    return "head_dim = dim / n_heads = " + std::to_string(c.head_dim()) + " is odd; RoPE needs pairs " + fields;
  if (file_size != expected_bytes(c))
    return "file has " + std::to_string(file_size) + " bytes but its header (dim " + std::to_string(c.dim) +
           ", hidden_dim " + std::to_string(c.hidden_dim) + ", n_layers " + std::to_string(c.n_layers) +
           ", heads " + std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) + ", vocab_size " +
           std::to_string(c.vocab_size) + ", seq_len " + std::to_string(c.max_seq_len) +
           (c.tied_classifier ? ", tied" : ", untied") + ") implies " + std::to_string(expected_bytes(c)) +
           ": truncated or not a llama2.c v0 file";
  config = c;
  return "";
}

ModelConfig parse_llama2c_header(const std::string& path, const char* head, std::size_t head_size,
                                 std::uint64_t file_size) {
  ModelConfig config;
  const std::string problem = llama2c_header_problem(head, head_size, file_size, config);
  MOPS_CHECK(problem.empty(), path << ": " << problem);
  return config;
}

}  // namespace mops
