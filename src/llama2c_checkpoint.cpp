#include "llama2c_checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "checkpoint.h"
#include "errors.h"

namespace mops {
namespace {

constexpr int32_t kVersionedMagic = 0x616b3432;  // "ak42": llama2.c export versions >= 1

ModelConfig read_header(std::ifstream& in, const std::string& path) {
  int32_t header[7];
  in.read(reinterpret_cast<char*>(header), sizeof(header));
  MOPS_CHECK(in.gcount() == sizeof(header), path << ": truncated: shorter than the 28-byte llama2.c header");
  MOPS_CHECK(header[0] != kVersionedMagic,
             path << ": this is a versioned llama2.c export (magic 'ak42'); only the legacy v0 "
                     "format is supported: export with llama2.c's export.py --version 0");
  ModelConfig c;
  c.dim = header[0];
  c.hidden_dim = header[1];
  c.n_layers = header[2];
  c.n_heads = header[3];
  c.n_kv_heads = header[4];
  c.vocab_size = std::abs(header[5]);
  c.max_seq_len = header[6];
  c.tied_classifier = header[5] > 0;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.validate(path);
  // Bounds far above any real model keep the size arithmetic below from overflowing.
  MOPS_CHECK(c.dim <= (1 << 17) && c.hidden_dim <= (1 << 17) && c.n_layers <= 1024 && c.n_heads <= 1024 &&
                 c.vocab_size <= (1 << 22) && c.max_seq_len <= (1 << 22),
             path << ": header values (dim " << c.dim << ", hidden " << c.hidden_dim << ", layers " << c.n_layers
                  << ", vocab " << c.vocab_size << ", seq " << c.max_seq_len
                  << ") are implausibly large: not a llama2.c v0 file");
  return c;
}

// Bytes the weights of `c` take in the file, the unused RoPE tables included.
int64_t expected_bytes(const ModelConfig& c) {
  const int64_t C = c.dim, F = c.hidden_dim, L = c.n_layers, V = c.vocab_size, kv = c.kv_dim();
  int64_t floats = V * C + L * C * 2 + L * (C * C * 2 + C * kv * 2) + L * C * F * 3 + C;
  floats += int64_t(c.max_seq_len) * c.head_dim();  // freq_cis real + imaginary halves
  if (!c.tied_classifier) floats += V * C;
  return 28 + floats * 4;
}

}  // namespace

Llama load_llama2c_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MOPS_CHECK(in, "cannot open '" << path << "': " << std::strerror(errno));
  const ModelConfig c = read_header(in, path);
  const int64_t file_bytes = int64_t(std::filesystem::file_size(path));
  MOPS_CHECK(file_bytes == expected_bytes(c),
             path << ": file has " << file_bytes << " bytes but its header (dim " << c.dim << ", hidden "
                  << c.hidden_dim << ", layers " << c.n_layers << ", heads " << c.n_heads << "/"
                  << c.n_kv_heads << ", vocab " << c.vocab_size << ", seq " << c.max_seq_len
                  << (c.tied_classifier ? ", tied" : ", untied") << ") implies " << expected_bytes(c)
                  << ": truncated or not a llama2.c v0 file");
  Llama model(c);
  ParameterFiller filler(model, path);
  auto read = [&](std::vector<int64_t> shape) {
    auto t = torch::empty(shape, torch::kFloat32);
    in.read(reinterpret_cast<char*>(t.data_ptr<float>()), t.numel() * 4);
    MOPS_CHECK(in, path << ": read failed");
    return t;
  };
  // Per-kind arrays stacked over layers, in the file's order.
  const int64_t C = c.dim, F = c.hidden_dim, L = c.n_layers, kv = c.kv_dim();
  auto embedding = read({c.vocab_size, C});
  auto attention_norm = read({L, C});
  auto wq = read({L, C, C}), wk = read({L, kv, C}), wv = read({L, kv, C}), wo = read({L, C, C});
  auto ffn_norm = read({L, C});
  auto w1 = read({L, F, C}), w2 = read({L, C, F}), w3 = read({L, F, C});
  auto final_norm = read({C});
  read({c.max_seq_len, c.head_dim()});  // freq_cis tables: recomputed by RotaryEmbedding
  filler.fill("tok_embeddings.weight", embedding);
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    filler.fill(p + "attention_norm.weight", attention_norm[l]);
    filler.fill(p + "attention.wq.weight", wq[l]);
    filler.fill(p + "attention.wk.weight", wk[l]);
    filler.fill(p + "attention.wv.weight", wv[l]);
    filler.fill(p + "attention.wo.weight", wo[l]);
    filler.fill(p + "ffn_norm.weight", ffn_norm[l]);
    filler.fill(p + "feed_forward.w1.weight", w1[l]);
    filler.fill(p + "feed_forward.w2.weight", w2[l]);
    filler.fill(p + "feed_forward.w3.weight", w3[l]);
  }
  filler.fill("norm.weight", final_norm);
  if (!c.tied_classifier) filler.fill("output.weight", read({c.vocab_size, C}));
  filler.finish();
  return model;
}

}  // namespace mops
