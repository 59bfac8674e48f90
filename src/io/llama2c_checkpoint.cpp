#include "llama2c_checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "checkpoint.h"
#include "errors.h"
#include "llama2c_header.h"

namespace mops {

Llama load_llama2c_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MOPS_CHECK(in, "cannot open '" << path << "': " << std::strerror(errno));
  char head[kLlama2cHeaderBytes];
  in.read(head, sizeof(head));
  const ModelConfig c = parse_llama2c_header(path, head, in.gcount(), std::filesystem::file_size(path));
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
