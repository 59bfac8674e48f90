#include "llama.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "errors.h"
#include "precision.h"

namespace mops {

// ---------------------------------------------------------------- RMSNorm

RMSNormImpl::RMSNormImpl(int dim, float eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  // In float32 whatever the activations' dtype: a bfloat16 mean of squares loses the scale.
  const auto x32 = at_least_float32(x);                                         // (..., C)
  auto inv_rms = torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);  // (..., 1)
  return (x32 * inv_rms).to(x.scalar_type()) * weight;
}

// ---------------------------------------------------------------- Attention

namespace {
torch::nn::Linear linear(int in, int out) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
}

// Copies the weights (rows, C) one under another into one matrix and makes each weight a view
// of its rows; returns the matrix.
torch::Tensor pack_rows(const std::vector<torch::Tensor*>& weights) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (auto* w : weights) parts.push_back(*w);
  auto packed = torch::cat(parts, 0).contiguous();  // (sum of rows, C)
  const int64_t C = packed.size(1);
  int64_t row = 0;
  for (auto* w : weights) {
    const int64_t rows = w->size(0);
    w->set_(packed.storage(), packed.storage_offset() + row * C, {rows, C}, {C, 1});
    row += rows;
  }
  return packed;
}

// (S, Sk) of `options`' dtype: 0 where query s (the last S of Sk positions) may look at key column j, -inf after it.
torch::Tensor causal_mask(int64_t S, int64_t Sk, const torch::TensorOptions& options) {
  auto future = torch::ones({S, Sk}, options.dtype(torch::kBool)).triu(Sk - S + 1);
  return torch::zeros({S, Sk}, options).masked_fill_(future, -std::numeric_limits<float>::infinity());
}

// (R S, Sk): the causal mask of R query heads side by side, from `memo` when it has this shape
// and dtype (the layers of one run_layers call share it).
torch::Tensor grouped_causal_mask(int64_t S, int64_t Sk, int64_t R, const torch::TensorOptions& options,
                                  torch::Tensor* memo) {
  if (memo && memo->defined() && memo->size(0) == R * S && memo->size(1) == Sk && memo->dtype() == options.dtype()) {
    return *memo;
  }
  auto mask = causal_mask(S, Sk, options).repeat({R, 1});
  if (memo) *memo = mask;
  return mask;
}

// Whether `packed` still holds the weights: none was replaced by another tensor since, and none
// trains (the packed product would give it no gradient).
bool still_packed(const torch::Tensor& packed, const std::vector<const torch::Tensor*>& weights) {
  if (!packed.defined()) return false;
  for (const auto* w : weights) {
    if (!w->is_alias_of(packed) || w->requires_grad()) return false;
  }
  return true;
}
}  // namespace

AttentionImpl::AttentionImpl(const ModelConfig& config)
    : n_heads_(config.n_heads), n_kv_heads_(config.n_kv_heads), head_dim_(config.head_dim()) {
  wq = register_module("wq", linear(config.dim, config.dim));
  wk = register_module("wk", linear(config.dim, config.kv_dim()));
  wv = register_module("wv", linear(config.dim, config.kv_dim()));
  wo = register_module("wo", linear(config.dim, config.dim));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const RotaryEmbedding& rope,
                                     int64_t start, const AttentionContext& context) {
  const int64_t B = x.size(0), S = x.size(1);
  const int64_t H = n_heads_, G = n_kv_heads_, D = head_dim_;
  const int64_t first = context.output_from, Sq = S - first;  // query rows: first .. S-1
  MOPS_CHECK(0 <= first && first < S && (first == 0 || !context.cache_keys),
             "attention output rows from " << first << " of " << S << " (and not with a KV cache)");
  torch::Tensor q, k, v;
  if (still_packed(packed_, {&wq->weight, &wk->weight, &wv->weight})) {
    if (first == 0) {
      auto qkv = torch::linear(x, packed_).split_with_sizes({H * D, G * D, G * D}, -1);  // (B, S, H D | G D | G D)
      q = qkv[0], k = qkv[1], v = qkv[2];
    } else {
      q = torch::linear(x.slice(1, first), packed_.slice(0, 0, H * D));                 // (B, Sq, H D)
      auto kv = torch::linear(x, packed_.slice(0, H * D)).split_with_sizes({G * D, G * D}, -1);  // (B, S, G D) x 2
      k = kv[0], v = kv[1];
    }
  } else {
    q = wq(x.slice(1, first)), k = wk(x), v = wv(x);
  }
  const auto& a = adapter_or_none(context.adapter);
  auto* masks = context.dropout_masks;
  q = plus_update(q, a.wq, x.slice(1, first), masks);
  k = scaled_by(plus_update(k, a.wk, x, masks), a.key_scale);
  v = scaled_by(plus_update(v, a.wv, x, masks), a.value_scale);
  q = q.view({B, Sq, H, D}).transpose(1, 2);  // (B, H, Sq, D)
  k = k.view({B, S, G, D}).transpose(1, 2);   // (B, G, S, D)
  v = v.view({B, S, G, D}).transpose(1, 2);   // (B, G, S, D)
  q = rope.apply(q, start + first);
  k = rope.apply(k, start);
  // Prefix tuning: the prefix goes in front once; with a KV cache it stays there, as the prompt.
  if (a.prefix_length() > 0 && !(context.cache_keys && context.cache_keys->defined())) {
    MOPS_CHECK(!context.column_weights.defined(), "a prefix and gate column weights in one layer");
    auto in_front = [&](const torch::Tensor& prefix, const torch::Tensor& t) {  // (N, G D), (B, G, S, D)
      auto p = prefix.to(t.scalar_type()).view({1, a.prefix_length(), G, D}).transpose(1, 2).expand({B, G, -1, D});
      return torch::cat({p, t}, 2);  // (B, G, N + S, D)
    };
    k = in_front(a.prefix_keys, k);
    v = in_front(a.prefix_values, v);
  }
  if (context.cache_keys) {
    if (context.cache_keys->defined()) {
      k = torch::cat({*context.cache_keys, k}, 2);  // (B, G, Sk, D)
      v = torch::cat({*context.cache_values, v}, 2);
    }
    *context.cache_keys = k;
    *context.cache_values = v;
  }
  const int64_t Sk = k.size(2), R = H / G;
  const double scale = 1.0 / std::sqrt(double(D));
  // The gate's weights (B, P) on the prompt columns act on the values: (probs * w) @ v =
  // probs @ (w * v), which touches R S / D times fewer numbers than weighting the probabilities.
  torch::Tensor weights;  // (B, 1, Sk, 1) or undefined
  if (context.column_weights.defined()) {
    const int64_t P = context.prompt_columns;
    auto token_columns = torch::ones({B, Sk - P}, v.options());
    weights = torch::cat({context.column_weights.to(v.scalar_type()), token_columns}, 1).view({B, 1, Sk, 1});
    v = v * weights;
  }
  torch::Tensor out;  // (B, H, Sq, D)
  if (!context.record_probs) {
    // LibTorch's fused attention (scaled_dot_product_attention) with the prompt-visible causal
    // mask; the last position alone sees every column and needs none. Measured as fast or faster
    // than the written-out product below on the CPU (BENCHMARKS.md, "Fused attention").
    c10::optional<torch::Tensor> mask;
    if (Sq > 1) mask = grouped_causal_mask(Sq, Sk, 1, q.options(), context.mask_memo);  // (Sq, Sk)
    out = at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false, scale, /*enable_gqa=*/G != H);
  } else {
    // Written out, for callers that read the probabilities: the R query heads of a key/value head
    // side by side, so that no key or value is copied (query head h = g * R + r reads key/value
    // head g); one product gives the scaled scores plus the causal mask (0 or -inf).
    auto grouped = q.reshape({B * G, R * Sq, D});           // (B G, R Sq, D)
    auto keys = k.reshape({B * G, Sk, D}).transpose(1, 2);  // (B G, D, Sk)
    torch::Tensor scores;                                   // (B G, R Sq, Sk)
    if (Sq > 1) {
      scores = torch::baddbmm(grouped_causal_mask(Sq, Sk, R, q.options(), nullptr), grouped, keys, 1.0, scale);
    } else {
      scores = torch::bmm(grouped, keys) * scale;
    }
    auto probs = torch::softmax(scores.view({B, H, Sq, Sk}), -1);  // (B, H, Sq, Sk)
    *context.record_probs = weights.defined() ? probs * weights.view({B, 1, 1, Sk}) : probs;
    out = torch::matmul(probs.view({B, G, R * Sq, Sk}), v).view({B, H, Sq, D});
  }
  out = out.transpose(1, 2).reshape({B, Sq, H * D});  // (B, Sq, C)
  if (context.record_mixed) *context.record_mixed = out;
  return plus_update(wo(out), a.wo, out, masks);
}

void AttentionImpl::pack_projections() { packed_ = pack_rows({&wq->weight, &wk->weight, &wv->weight}); }

// ---------------------------------------------------------------- FeedForward and Block

FeedForwardImpl::FeedForwardImpl(const ModelConfig& config) {
  w1 = register_module("w1", linear(config.dim, config.hidden_dim));
  w2 = register_module("w2", linear(config.hidden_dim, config.dim));
  w3 = register_module("w3", linear(config.dim, config.hidden_dim));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x, torch::Tensor* record_hidden,
                                       const LayerAdapter* adapter, at::Generator* dropout_masks) {
  torch::Tensor gate, up;  // (B, S, F)
  if (still_packed(packed_, {&w1->weight, &w3->weight})) {
    auto gate_up = torch::linear(x, packed_).chunk(2, -1);  // (B, S, F) twice
    gate = gate_up[0], up = gate_up[1];
  } else {
    gate = w1(x), up = w3(x);
  }
  const auto& a = adapter_or_none(adapter);
  auto hidden = scaled_by(torch::silu(plus_update(gate, a.w1, x, dropout_masks)) * plus_update(up, a.w3, x, dropout_masks),
                          a.hidden_scale);  // (B, S, F)
  if (record_hidden) *record_hidden = hidden;
  return plus_update(w2(hidden), a.w2, hidden, dropout_masks);
}

void FeedForwardImpl::pack_projections() { packed_ = pack_rows({&w1->weight, &w3->weight}); }

BlockImpl::BlockImpl(const ModelConfig& config) {
  attention_norm = register_module("attention_norm", RMSNorm(config.dim, config.norm_eps));
  attention = register_module("attention", Attention(config));
  ffn_norm = register_module("ffn_norm", RMSNorm(config.dim, config.norm_eps));
  feed_forward = register_module("feed_forward", FeedForward(config));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const RotaryEmbedding& rope,
                                 int64_t start, const AttentionContext& context, LinearInputs* record) {
  auto attention_in = attention_norm(x);
  auto recording_context = context;
  if (record) recording_context.record_mixed = &record->mixed;
  auto h = x.slice(1, context.output_from) + attention->forward(attention_in, rope, start, recording_context);
  auto ffn_in = ffn_norm(h);
  if (record) {
    record->attention_in = attention_in;
    record->ffn_in = ffn_in;
  }
  return h + feed_forward->forward(ffn_in, record ? &record->hidden : nullptr, context.adapter, context.dropout_masks);
}

// ---------------------------------------------------------------- Llama

LlamaImpl::LlamaImpl(const ModelConfig& config)
    : config_(config), rope_(config.head_dim(), config.rope_theta) {
  config.validate("model");
  tok_embeddings = register_module("tok_embeddings",
                                   torch::nn::Embedding(config.vocab_size, config.dim));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int l = 0; l < config.n_layers; ++l) layers->push_back(Block(config));
  norm = register_module("norm", RMSNorm(config.dim, config.norm_eps));
  if (!config.tied_classifier) output = register_module("output", linear(config.dim, config.vocab_size));
}

torch::Tensor LlamaImpl::embed(const torch::Tensor& tokens) {
  MOPS_CHECK(tokens.dim() == 2 && tokens.scalar_type() == torch::kLong,
             "tokens must be a (B, T) int64 tensor, got " << tokens.sizes() << " "
                                                         << tokens.scalar_type());
  if (tokens.numel() > 0) {
    const int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
    MOPS_CHECK(lo >= 0 && hi < config_.vocab_size,
               "token id " << (lo < 0 ? lo : hi) << " is outside the vocabulary [0, "
                           << config_.vocab_size << ")");
  }
  return tok_embeddings(tokens.to(device()));  // (B, T, C)
}

torch::Tensor LlamaImpl::run_layers(torch::Tensor h, int begin, int end, const LayerRun& run) {
  const int L = config_.n_layers;
  MOPS_CHECK(0 <= begin && begin <= end && end <= L,
             "layer range [" << begin << ", " << end << ") is outside [0, " << L << "]");
  MOPS_CHECK(run.output_from == 0 || begin < end,
             "output rows from " << run.output_from << " need at least one layer to run");
  KVCache* cache = run.cache;
  if (cache && int(cache->keys.size()) != L) {
    cache->keys.assign(L, torch::Tensor());
    cache->values.assign(L, torch::Tensor());
    cache->prompt_columns.assign(L, 0);
  }
  torch::Tensor weights;  // (B, P) or undefined
  if (run.column_weights.defined()) {
    weights = run.column_weights.dim() == 1 ? run.column_weights.unsqueeze(0).expand({h.size(0), -1})
                                            : run.column_weights;
  }
  MOPS_CHECK(!run.adapters || int(run.adapters->size()) == L,
             run.adapters->size() << " layer adapters for a model of " << L << " layers");
  torch::Tensor mask_memo;
  for (int l = begin; l < end; ++l) {
    const auto* adapter = run.adapters ? &(*run.adapters)[size_t(l)] : nullptr;
    // The tokens' first position: those the cache holds, less a prefix it holds (positionless).
    const int64_t held = cache ? cache->length(l) : 0;
    const int64_t start = held > 0 && adapter ? held - adapter->prefix_length() : held;
    AttentionContext context;
    context.mask_memo = &mask_memo;
    if (l == end - 1) context.output_from = run.output_from;
    context.prompt_columns = held > 0 ? cache->prompt_columns[l] : run.prompt_columns;
    if (cache) {
      if (held == 0) cache->prompt_columns[l] = run.prompt_columns;
      context.cache_keys = &cache->keys[l];
      context.cache_values = &cache->values[l];
    }
    if (weights.defined()) {
      MOPS_CHECK(weights.size(0) == h.size(0) && weights.size(1) == context.prompt_columns,
                 "column weights " << run.column_weights.sizes() << " do not match layer " << l << ", which has "
                                   << context.prompt_columns << " prompt columns and batch " << h.size(0));
      context.column_weights = weights;
    }
    context.adapter = adapter;
    context.dropout_masks = run.dropout_masks;
    torch::Tensor probs;  // (B, H, S, Sk) when the observer wants them
    if (run.observer && run.observer->wants_attention()) context.record_probs = &probs;
    const auto input = h;
    h = layers[l]->as<Block>()->forward(h, rope_, start, context);
    if (run.observer) run.observer->on_layer(l, input, probs);
  }
  return h;
}

torch::Tensor LlamaImpl::classify(const torch::Tensor& h, int64_t prompt_columns) {
  return logits(h.slice(1, prompt_columns));  // (B, T, V)
}

torch::Tensor LlamaImpl::logits(const torch::Tensor& states) {
  auto x = norm(states);  // (..., C)
  if (config_.tied_classifier) return torch::matmul(x, tok_embeddings->weight.t());  // (..., V)
  return output(x);
}

torch::Tensor LlamaImpl::run_layer_recording(const torch::Tensor& h, int l, LinearInputs* record) {
  return block(l)->forward(h, rope_, 0, AttentionContext{}, record);
}

Block LlamaImpl::block(int l) {
  MOPS_CHECK(0 <= l && l < config_.n_layers, "layer " << l << " is outside [0, " << config_.n_layers - 1 << "]");
  return Block(layers->ptr<BlockImpl>(l));
}

torch::Tensor LlamaImpl::forward(const torch::Tensor& tokens, KVCache* cache) {
  LayerRun run;
  run.cache = cache;
  return classify(run_layers(embed(tokens), 0, config_.n_layers, run), 0);  // (B, T, V)
}

void LlamaImpl::init_weights(uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  const double residual_std = 0.02 / std::sqrt(2.0 * config_.n_layers);
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    auto& p = item.value();
    if (p.dim() == 1) {
      p.fill_(1.0);  // norm gains
    } else {
      const bool residual = name.find("wo.") != std::string::npos || name.find("w2.") != std::string::npos;
      p.normal_(0.0, residual ? residual_std : 0.02, generator);
    }
  }
}

void LlamaImpl::freeze_on(const torch::Device& device, torch::ScalarType dtype) {
  to(device, dtype);
  freeze();
}

void LlamaImpl::freeze() {
  for (auto& p : parameters()) p.set_requires_grad(false);
  for (int l = 0; l < config_.n_layers; ++l) {
    block(l)->attention->pack_projections();
    block(l)->feed_forward->pack_projections();
  }
}

}  // namespace mops
