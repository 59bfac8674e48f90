// The frozen backbone: a Llama-style decoder (RMSNorm, RoPE, SwiGLU, grouped-query attention)
// whose sequence at every layer is [P prompt positions | T token positions].
//
// Letters: B batch, T tokens in this call, P prompt positions at a layer, S = P + T,
// Sk key columns (cached ones included), C width, H query heads, G key/value heads,
// D head dim, F SwiGLU hidden width, V vocabulary.
//
// Prompts: optional vectors prepended at layer 0; optionally replaced by another set (P may
// change) at the input of a chosen layer. The mask is causal over [prompts | tokens], so every
// token sees all prompt columns and the tokens before it. In layers >= a chosen layer the
// post-softmax attention probabilities of the prompt columns are multiplied by per-column
// weights (the MoPs gate), in every head, without renormalisation.
#pragma once
#include <torch/torch.h>

#include <vector>

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

// Where prompts enter a forward pass and how the gate acts on them.
struct PromptPlan {
  torch::Tensor first_prompts;   // (P0, C) or (B, P0, C): prepended to the tokens at layer 0
  int replace_layer = -1;        // at the input of this layer the prompt positions are replaced...
  torch::Tensor replacement;     // ...by these: (P, C) or (B, P, C)
  int weight_from_layer = -1;    // in layers >= this the prompt columns' probabilities are scaled...
  torch::Tensor column_weights;  // ...by these: (P,) or (B, P), one weight per prompt column
  int grad_from_layer = 0;       // layers below this one run without autograd
  int capture_layer = -1;        // hidden states at the input of this layer are returned (L = final)
  std::vector<torch::Tensor>* attention = nullptr;  // when set: per layer run, the attention
                                                    // probabilities after the column weights (B, H, S, Sk)
};

struct ForwardResult {
  torch::Tensor logits;    // (B, T, V) at token positions only
  torch::Tensor captured;  // (B, P + T, C) at capture_layer, or undefined
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
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* record_hidden = nullptr);
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

  // tokens: (B, T) int64. With a non-empty cache the prompts are already inside it and the
  // plan may only carry column weights.
  ForwardResult forward(const torch::Tensor& tokens, const PromptPlan& plan = {},
                        KVCache* cache = nullptr);

  // The stages forward() is made of, for callers that act between them (the gate).
  torch::Tensor embed(const torch::Tensor& tokens);  // (B, T) -> (B, T, C)
  // Layers [begin, end) on h: (B, S, C) whose first `prompt_columns` positions are prompts.
  // The last of them computes outputs only for rows >= `output_from` (the rows before give it
  // keys and values), so the result is (B, S - output_from, C): for callers that read only
  // the later rows (the training loss). Not with a KV cache.
  torch::Tensor run_layers(torch::Tensor h, int begin, int end, int64_t prompt_columns,
                           const PromptPlan& plan, KVCache* cache, int64_t output_from = 0);
  torch::Tensor classify(const torch::Tensor& h, int64_t prompt_columns);  // -> (B, T, V)
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

// (P, C) or (B, P, C) -> (B, P, C)
torch::Tensor batch_prompts(const torch::Tensor& prompts, int64_t batch, const char* what);
// Replace the first `old_prompts` positions of h (B, S, C) by prompts (B, P, C).
torch::Tensor replace_prompt_positions(const torch::Tensor& h, int64_t old_prompts,
                                       const torch::Tensor& prompts);

}  // namespace mops
