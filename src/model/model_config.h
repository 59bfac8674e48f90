// Hyper-parameters of a Llama-style decoder, independent of where the weights came from.
#pragma once
#include <cstdint>
#include <string>

namespace mops {

struct ModelConfig {
  int dim = 0;          // C: model width
  int hidden_dim = 0;   // F: SwiGLU hidden width
  int n_layers = 0;     // L
  int n_heads = 0;      // H: query heads
  int n_kv_heads = 0;   // G: key/value heads (G divides H; G < H is grouped-query attention)
  int vocab_size = 0;   // V
  int max_seq_len = 0;  // longest sequence (prompt positions included) the model was trained on
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  bool tied_classifier = true;  // classifier shares the token embedding matrix

  int head_dim() const { return dim / n_heads; }     // D
  int kv_dim() const { return n_kv_heads * head_dim(); }
  int64_t parameter_count() const;

  // Throws mops::Error naming `source` and the offending field when the shape is impossible.
  void validate(const std::string& source) const;

  std::string to_json() const;
  static ModelConfig from_json(const std::string& json_text, const std::string& source);
};

// SwiGLU hidden width as Llama chooses it: 2/3 * 4C rounded up to a multiple of `multiple_of`.
int llama_hidden_dim(int dim, int multiple_of);

}  // namespace mops
