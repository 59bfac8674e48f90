// What a parameter-efficient method changes inside one layer of the frozen backbone (issue 18),
// as each method's paper and PEFT define it, without touching the frozen weights:
//   LoRA (Hu et al. 2021): a projection y = W x gains s B (A x), A (r, in), B (out, r), s = alpha / r;
//   IA3 (Liu et al. 2022): the keys, the values and the feed-forward's hidden units (the input of
//   w2) are multiplied elementwise by learned vectors;
//   prefix tuning (Li and Liang 2021): N learned keys and values in front of the layer's own, which
//   every query attends to. They have no position: RoPE is not applied to them and the tokens keep
//   their positions (PEFT's Llama instead starts the tokens at position N).
// A run of layers takes one LayerAdapter per layer (LayerRun::adapters, llama.h); an undefined
// member changes nothing, so a default LayerAdapter is the frozen layer.
//
// Letters: G key/value heads, D head dim, F SwiGLU hidden width, r LoRA rank, N prefix length.
#pragma once
#include <torch/torch.h>

#include <string>

namespace mops {

struct LowRankUpdate {
  torch::Tensor a;     // (r, in)
  torch::Tensor b;     // (out, r)
  double scale = 1;    // s = alpha / r
  double dropout = 0;  // p: PEFT's lora_dropout on the update's input, in training only
  bool defined() const { return a.defined(); }
  // x (..., in) -> s B (A x): (..., out), in x's dtype.
  torch::Tensor operator()(const torch::Tensor& x) const;
};

struct LayerAdapter {
  // LoRA on the attention projections and the SwiGLU's w1 (gate), w3 (up) and w2 (down).
  LowRankUpdate wq, wk, wv, wo, w1, w2, w3;
  torch::Tensor key_scale;     // IA3: (G D), multiplies every key (before RoPE)
  torch::Tensor value_scale;   // IA3: (G D), multiplies every value
  torch::Tensor hidden_scale;  // IA3: (F), multiplies the feed-forward's hidden units
  torch::Tensor prefix_keys;    // prefix tuning: (N, G D), before the layer's keys (already "rotated")
  torch::Tensor prefix_values;  // prefix tuning: (N, G D)
  int64_t prefix_length() const { return prefix_keys.defined() ? prefix_keys.size(0) : 0; }
  // The LoRA update of the matrix named `matrix` (wq wk wv wo w1 w2 w3, as in llama.h).
  LowRankUpdate& update(const std::string& matrix);
  const LowRankUpdate& update(const std::string& matrix) const;
};

// `adapter`, or for null a LayerAdapter that changes nothing (one shared instance).
const LayerAdapter& adapter_or_none(const LayerAdapter* adapter);

// x (..., n) times `scale` (n) when it is defined, else x unchanged.
torch::Tensor scaled_by(const torch::Tensor& x, const torch::Tensor& scale);
// y plus update(x) when the update is defined, else y unchanged. With `dropout_masks` (training)
// and update.dropout = p > 0, the update reads x with each element zeroed with probability p and
// the others scaled by 1 / (1 - p), the mask drawn on the CPU from that stream (the same on every
// device).
torch::Tensor plus_update(const torch::Tensor& y, const LowRankUpdate& update, const torch::Tensor& x,
                          at::Generator* dropout_masks = nullptr);

}  // namespace mops
