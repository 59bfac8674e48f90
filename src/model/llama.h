// The frozen backbone: a Llama-style decoder (RMSNorm, RoPE, SwiGLU, grouped-query attention)
// whose sequence at every layer is [P prompt positions | T token positions].
//
// Letters: B batch, T tokens in this call, P prompt positions at a layer, S = P + T,
// Sk key columns (cached ones included), C width, H query heads, G key/value heads,
// D head dim, F SwiGLU hidden width, V vocabulary.
//
// Prompts: the first P positions of a layer's input may be prompt vectors; which vectors, and at
// which layer they change, is the caller's (src/prompts/prompted_forward.h). The mask is causal
// over [prompts | tokens], so every token sees all prompt columns and the tokens before it. A run
// of layers may multiply the post-softmax attention probabilities of the prompt columns by
// per-column weights (the MoPs gate), in every head, without renormalisation.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "layer_adapter.h"
#include "model_config.h"
#include "rope.h"

namespace mops {

// Keys and values of every layer for incremental decoding; the prompt prefix stays in it.
struct KVCache {
  std::vector<torch::Tensor> keys;            // per layer (B, G, Sk, D), RoPE applied
  std::vector<torch::Tensor> values;          // per layer (B, G, Sk, D)
  std::vector<int64_t> prompt_columns;        // per layer: how many of the Sk columns are prompts
  bool empty() const { return keys.empty() || !keys[0].defined(); }
  int64_t length(int layer) const { return keys[layer].defined() ? keys[layer].size(2) : 0; }
};

// Sees every layer a run_layers() call runs, for tests and analysis (as llama.cpp names and
// observes its intermediate tensors).
class LayerObserver {
 public:
  virtual ~LayerObserver() = default;
  // Whether on_layer() wants the attention probabilities: they need the written-out attention,
  // slower than the fused one.
  virtual bool wants_attention() const { return false; }
  // input: (B, S, C) at the input of `layer`; attention: its probabilities after the column
  // weights, (B, H, S, Sk), or undefined unless wants_attention().
  virtual void on_layer(int layer, const torch::Tensor& input, const torch::Tensor& attention) = 0;
};

// What a run of layers needs besides its input h: (B, S, C).
struct LayerRun {
  int64_t prompt_columns = 0;    // the first positions of h that are prompts (a layer whose
                                 // cache already holds keys keeps the count it had then)
  torch::Tensor column_weights;  // (B, prompt_columns) or (prompt_columns): in every layer run,
                                 // the attention probabilities of the prompt columns are scaled
                                 // by these (the MoPs gate); undefined: no scaling
  KVCache* cache = nullptr;      // keys and values of every layer run are appended to it
  int64_t output_from = 0;       // the last layer computes only rows >= this one (not with a cache)
  LayerObserver* observer = nullptr;
  const std::vector<LayerAdapter>* adapters = nullptr;  // one per layer of the model (layer_adapter.h),
                                                        // applied in the layers run; null: none
  at::Generator* dropout_masks = nullptr;  // training: LoRA's dropout masks are drawn from it
                                           // (plus_update); null: no dropout (evaluation)
};

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int dim, float eps);
  torch::Tensor forward(const torch::Tensor& x);  // (..., C) -> (..., C)
  torch::Tensor weight;                           // (C)
 private:
  float eps_;
};
TORCH_MODULE(RMSNorm);

// Per-call inputs of one attention layer.
struct AttentionContext {
  int64_t prompt_columns = 0;    // leading key columns that are prompt positions
  torch::Tensor column_weights;  // (B, prompt_columns) or undefined: no scaling
  torch::Tensor* cache_keys = nullptr;    // (B, G, Sk, D) grown in place when set
  torch::Tensor* cache_values = nullptr;  // (B, G, Sk, D)
  torch::Tensor* record_mixed = nullptr;  // when set, receives the input of wo: (B, Sq, C), Sq = S - output_from
  torch::Tensor* record_probs = nullptr;  // when set, receives the final attention probabilities (B, H, Sq, Sk)
  torch::Tensor* mask_memo = nullptr;     // when set, the causal mask is reused from (and left in) it
  int64_t output_from = 0;  // rows before this one only give keys and values: the output has S - output_from rows
  const LayerAdapter* adapter = nullptr;  // the layer's LoRA / IA3 changes (attention and feed-forward), or none
  at::Generator* dropout_masks = nullptr;  // LayerRun::dropout_masks
};

// The inputs of a block's linear layers in one forward pass, recorded for compression.
struct LinearInputs {
  torch::Tensor attention_in;  // (B, S, C): input of wq, wk, wv
  torch::Tensor mixed;         // (B, S, C): input of wo
  torch::Tensor ffn_in;        // (B, S, C): input of w1, w3
  torch::Tensor hidden;        // (B, S, F): input of w2
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const ModelConfig& config);
  // x: (B, S, C) at positions start .. start+S-1 -> (B, S - context.output_from, C)
  torch::Tensor forward(const torch::Tensor& x, const RotaryEmbedding& rope, int64_t start,
                        const AttentionContext& context);
  // Frozen weights only: wq | wk | wv become row views of one matrix, so that one product gives
  // q, k and v (and one product their input's gradient).
  void pack_projections();
  torch::nn::Linear wq{nullptr}, wk{nullptr}, wv{nullptr}, wo{nullptr};
 private:
  int n_heads_, n_kv_heads_, head_dim_;
  torch::Tensor packed_;  // (H D + 2 G D, C) or undefined
};
TORCH_MODULE(Attention);

class FeedForwardImpl : public torch::nn::Module {
 public:
  explicit FeedForwardImpl(const ModelConfig& config);
  // (B, S, C) -> (B, S, C); `record_hidden` receives the input of w2: (B, S, F)
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* record_hidden = nullptr,
                        const LayerAdapter* adapter = nullptr, at::Generator* dropout_masks = nullptr);
  void pack_projections();  // frozen weights only: w1 | w3 as row views of one (2F, C) matrix
  torch::nn::Linear w1{nullptr}, w2{nullptr}, w3{nullptr};  // gate (F,C), down (C,F), up (F,C)
 private:
  torch::Tensor packed_;  // (2F, C) or undefined
};
TORCH_MODULE(FeedForward);

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const ModelConfig& config);
  // (B, S, C) -> (B, S - context.output_from, C); `record` receives the inputs of every linear layer
  torch::Tensor forward(const torch::Tensor& x, const RotaryEmbedding& rope, int64_t start,
                        const AttentionContext& context, LinearInputs* record = nullptr);
  RMSNorm attention_norm{nullptr}, ffn_norm{nullptr};
  Attention attention{nullptr};
  FeedForward feed_forward{nullptr};
};
TORCH_MODULE(Block);

class LlamaImpl : public torch::nn::Module {
 public:
  explicit LlamaImpl(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  // Where the weights are and their dtype (ComputeDevice: bfloat16 or float32). Inputs given
  // on another device are moved here.
  torch::Device device() const { return tok_embeddings->weight.device(); }
  torch::ScalarType dtype() const { return tok_embeddings->weight.scalar_type(); }

  // The backbone without prompts: tokens (B, T) int64 -> logits (B, T, V); with a cache, the
  // tokens follow the ones it holds.
  torch::Tensor forward(const torch::Tensor& tokens, KVCache* cache = nullptr);

  // The stages forward() is made of, for callers that put prompts between them
  // (src/prompts/prompted_forward.h, the one place where prompts enter the backbone).
  torch::Tensor embed(const torch::Tensor& tokens);  // (B, T) -> (B, T, C)
  // Layers [begin, end) on h: (B, S, C) -> (B, S - run.output_from, C). The last layer computes
  // outputs only for rows >= run.output_from (the rows before give it keys and values): for
  // callers that read only the later rows (the training loss).
  torch::Tensor run_layers(torch::Tensor h, int begin, int end, const LayerRun& run = {});
  // (B, P + T, C) final states -> (B, T, V) logits of the T token positions
  torch::Tensor classify(const torch::Tensor& h, int64_t prompt_columns);
  torch::Tensor logits(const torch::Tensor& states);  // final norm and classifier: (..., C) -> (..., V)
  // Layer `l` alone on h: (B, T, C) without prompts, recording its linear layers' inputs.
  torch::Tensor run_layer_recording(const torch::Tensor& h, int l, LinearInputs* record);
  Block block(int l);

  // Small random weights for training from scratch (llama2.c's scheme).
  void init_weights(uint64_t seed);
  // No backbone parameter requires a gradient; each layer's projections that read the same
  // input are packed into one matrix (the weights stay parameters, now views of it). After
  // moving the model (to()), since moving copies the weights apart again.
  void freeze();
  // The backbone ready for prompts: moved to `device` in `dtype`, then frozen.
  void freeze_on(const torch::Device& device, torch::ScalarType dtype);

  torch::nn::Embedding tok_embeddings{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  torch::nn::Linear output{nullptr};  // only when the classifier is not tied

 private:
  ModelConfig config_;
  RotaryEmbedding rope_;
};
TORCH_MODULE(Llama);

}  // namespace mops
