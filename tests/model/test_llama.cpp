// The decoder's semantics: causality, prompt positions, gate column weights, GQA, RoPE and
// the KV cache. References are written out here with loops. Where prompts enter (P0, the mid
// prompts, the no-grad lower half) is tested with the prompted forward (test_mixture_of_prompts.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "errors.h"
#include "llama.h"

namespace mops {
namespace {

ModelConfig tiny_config(int heads = 4, int kv_heads = 2) {
  ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 4;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.vocab_size = 50;
  c.max_seq_len = 64;
  return c;
}

Llama tiny_model(uint64_t seed = 1, ModelConfig config = tiny_config()) {
  Llama model(config);
  model->init_weights(seed);
  // Larger weights than the training init, so that differences are far above rounding.
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.dim() == 2) p.mul_(5.0);
  }
  return model;
}

torch::Tensor random_tokens(int64_t B, int64_t T, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randint(0, 50, {B, T}, gen, torch::kLong);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// The mechanics src/prompts/prompted_forward.h builds on: `prompts` (P, C) in front of the
// tokens (B, T) at layer 0, their attention columns scaled by `weights` (P) or (B, P) in layers
// >= `weighted_from` -> logits (B, T, V).
torch::Tensor logits_with_prompts(Llama& model, const torch::Tensor& tokens, const torch::Tensor& prompts,
                                  const torch::Tensor& weights = {}, int weighted_from = 0,
                                  KVCache* cache = nullptr) {
  auto h = torch::cat({prompts.unsqueeze(0).expand({tokens.size(0), -1, -1}), model->embed(tokens)}, 1);
  LayerRun run;
  run.prompt_columns = prompts.size(0);
  run.cache = cache;
  h = model->run_layers(h, 0, weighted_from, run);
  run.column_weights = weights;
  h = model->run_layers(h, weighted_from, model->config().n_layers, run);
  return model->classify(h, prompts.size(0));
}

TEST(Llama, ChangingALaterTokenNeverChangesEarlierLogits) {
  auto model = tiny_model();
  torch::NoGradGuard no_grad;
  auto tokens = random_tokens(2, 12, 7);
  auto changed = tokens.clone();
  changed.index_put_({torch::indexing::Slice(), 7}, (tokens.index({torch::indexing::Slice(), 7}) + 1) % 50);
  auto a = model->forward(tokens), b = model->forward(changed);  // (B, T, V)
  const double before = max_diff(a.slice(1, 0, 7), b.slice(1, 0, 7));
  const double at_and_after = (a.slice(1, 7) - b.slice(1, 7)).abs().amax({0, 2}).min().item<double>();
  std::printf("max change before position 7: %.3g, min change at/after: %.3g\n", before, at_and_after);
  EXPECT_LT(before, 1e-5);
  EXPECT_GT(at_and_after, 1e-3);
}

TEST(Llama, EveryTokenSeesEveryPromptPosition) {
  auto model = tiny_model();
  torch::NoGradGuard no_grad;
  auto tokens = random_tokens(1, 10, 3);
  auto prompts = torch::randn({3, 32});
  auto base = logits_with_prompts(model, tokens, prompts);  // (1, T, V)
  EXPECT_EQ(base.sizes(), torch::IntArrayRef({1, 10, 50}));
  for (int p = 0; p < 3; ++p) {
    auto changed = prompts.clone();
    changed[p] += 1.0;
    auto logits = logits_with_prompts(model, tokens, changed);
    auto per_token = (logits - base).abs().amax({0, 2});  // (T)
    EXPECT_GT(per_token.min().item<double>(), 1e-4) << "prompt " << p << " is not seen by all tokens";
  }
}

TEST(Llama, UnitColumnWeightsChangeNothing) {
  auto model = tiny_model();
  torch::NoGradGuard no_grad;
  auto tokens = random_tokens(2, 8, 5);
  auto prompts = torch::randn({4, 32});
  auto plain = logits_with_prompts(model, tokens, prompts);
  EXPECT_EQ(max_diff(logits_with_prompts(model, tokens, prompts, torch::ones({4}), 1), plain), 0.0);
  EXPECT_GT(max_diff(logits_with_prompts(model, tokens, prompts, torch::full({4}, 0.5), 1), plain), 1e-4);
}

// freeze() packs wq|wk|wv and w1|w3 into one product each; the packed model computes the same,
// and its weights stay the parameters (views of the packed matrix).
TEST(Llama, PackedProjectionsGiveTheSameLogits) {
  auto loose = tiny_model(), packed = tiny_model();
  packed->freeze();
  torch::NoGradGuard no_grad;
  auto tokens = random_tokens(2, 9, 6);
  const auto prompts = torch::randn({3, 32}), weights = torch::full({3}, 0.7);
  auto with_prompts = [&](Llama& model) { return logits_with_prompts(model, tokens, prompts, weights, 2); };
  const auto expected = with_prompts(loose);
  EXPECT_LT(max_diff(with_prompts(packed), expected), 1e-4);
  // An in-place change of a weight reaches the packed product.
  packed->block(1)->attention->wk->weight.mul_(0.5);
  packed->block(1)->feed_forward->w3->weight.mul_(0.5);
  loose->block(1)->attention->wk->weight.mul_(0.5);
  loose->block(1)->feed_forward->w3->weight.mul_(0.5);
  EXPECT_LT(max_diff(with_prompts(packed), with_prompts(loose)), 1e-4);
}

// The last layer can compute only the later rows (the training loss's): the same as those rows
// of the full pass, with prompts and column weights, packed or not.
TEST(Llama, LastLayerRowsFromOutputFromEqualThoseOfTheFullPass) {
  for (bool frozen : {false, true}) {
    auto model = tiny_model(3);
    if (frozen) model->freeze();
    torch::NoGradGuard no_grad;
    auto h = torch::randn({2, 4 + 10, 32});  // 4 prompt positions, 10 tokens
    LayerRun run;
    run.prompt_columns = 4;
    run.column_weights = torch::tensor({{0.2f, 1.5f, 0.9f, 1.1f}, {1.0f, 0.4f, 2.0f, 0.6f}});
    const auto full = model->run_layers(h, 0, 4, run);  // (2, 14, 32)
    for (int64_t from : {1, 9, 13}) {
      run.output_from = from;
      const auto rows = model->run_layers(h, 0, 4, run);
      ASSERT_EQ(rows.size(1), 14 - from);
      EXPECT_LT(max_diff(rows, full.slice(1, from)), 1e-5) << "from " << from << (frozen ? " packed" : "");
    }
  }
}

// One attention layer computed with scalar loops in double: RoPE on interleaved pairs, GQA by
// index, causal mask over [prompts | tokens], column weights after the softmax.
torch::Tensor loop_attention(AttentionImpl& attn, const torch::Tensor& x, const torch::Tensor& weights,
                             int H, int G, float theta) {
  const int64_t S = x.size(0), C = x.size(1), D = C / H, P = weights.size(0);
  auto xd = x.to(torch::kFloat64);
  auto q = torch::matmul(xd, attn.wq->weight.to(torch::kFloat64).t());  // (S, C)
  auto k = torch::matmul(xd, attn.wk->weight.to(torch::kFloat64).t());  // (S, G*D)
  auto v = torch::matmul(xd, attn.wv->weight.to(torch::kFloat64).t());  // (S, G*D)
  auto rotate = [&](torch::Tensor t, int heads) {
    auto a = t.accessor<double, 2>();
    for (int64_t s = 0; s < S; ++s)
      for (int h = 0; h < heads; ++h)
        for (int64_t i = 0; i < D / 2; ++i) {
          const double angle = s * std::pow(double(theta), -2.0 * i / D);
          double& x0 = a[s][h * D + 2 * i];
          double& x1 = a[s][h * D + 2 * i + 1];
          const double r0 = x0 * std::cos(angle) - x1 * std::sin(angle);
          const double r1 = x0 * std::sin(angle) + x1 * std::cos(angle);
          x0 = r0;
          x1 = r1;
        }
  };
  rotate(q, H);
  rotate(k, G);
  auto out = torch::zeros({S, C}, torch::kFloat64);
  auto qa = q.accessor<double, 2>(), ka = k.accessor<double, 2>(), va = v.accessor<double, 2>();
  auto oa = out.accessor<double, 2>();
  auto weights64 = weights.to(torch::kFloat64);
  auto wa = weights64.accessor<double, 1>();
  for (int h = 0; h < H; ++h) {
    const int g = h / (H / G);
    for (int64_t i = 0; i < S; ++i) {
      std::vector<double> p(i + 1);
      double max_score = -1e300, total = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += qa[i][h * D + d] * ka[j][g * D + d];
        p[j] = dot / std::sqrt(double(D));
        max_score = std::max(max_score, p[j]);
      }
      for (auto& pj : p) total += (pj = std::exp(pj - max_score));
      for (int64_t j = 0; j <= i; ++j) {
        const double prob = p[j] / total * (j < P ? wa[j] : 1.0);
        for (int64_t d = 0; d < D; ++d) oa[i][h * D + d] += prob * va[j][g * D + d];
      }
    }
  }
  return torch::matmul(out, attn.wo->weight.to(torch::kFloat64).t());  // (S, C)
}

TEST(Llama, AttentionMatchesAScalarLoopReference) {
  auto model = tiny_model();
  torch::NoGradGuard no_grad;
  auto& attn = *model->layers[0]->as<Block>()->attention;
  auto x = torch::randn({9, 32});
  auto weights = torch::tensor({0.3f, 1.7f, 0.0f});  // three prompt columns
  RotaryEmbedding rope(8, 10000.0f);
  AttentionContext context;
  context.prompt_columns = 3;
  context.column_weights = weights.unsqueeze(0);
  auto ours = attn.forward(x.unsqueeze(0), rope, 0, context)[0];
  auto reference = loop_attention(attn, x, weights, 4, 2, 10000.0f);
  const double diff = max_diff(ours.to(torch::kFloat64), reference);
  std::printf("attention vs loop reference: max |diff| = %.3g\n", diff);
  EXPECT_LT(diff, 1e-4);
}

// The layer computes with LibTorch's fused attention unless the probabilities are recorded, then
// written out: both against the scalar loop and each other, with GQA, column weights, a causal
// mask offset by cached columns (Sq < Sk) and bfloat16.
TEST(Llama, FusedAndWrittenOutAttentionAgree) {
  auto model = tiny_model();
  torch::NoGradGuard no_grad;
  auto& attn = *model->layers[0]->as<Block>()->attention;
  RotaryEmbedding rope(8, 10000.0f);
  auto x = torch::randn({2, 9, 32});
  AttentionContext context;
  context.prompt_columns = 3;
  context.column_weights = torch::tensor({{0.3f, 1.7f, 0.0f}, {1.0f, 0.5f, 2.0f}});  // (B, 3)
  for (int64_t output_from : {0, 5}) {
    context.output_from = output_from;
    context.record_probs = nullptr;
    auto fused = attn.forward(x, rope, 0, context);  // (B, 9 - output_from, C)
    torch::Tensor probs;
    context.record_probs = &probs;
    auto written = attn.forward(x, rope, 0, context);
    EXPECT_EQ(probs.size(2), 9 - output_from);
    const double diff = max_diff(fused, written);
    std::printf("fused vs written-out attention, rows from %lld: max |diff| = %.3g\n", (long long)output_from, diff);
    EXPECT_LT(diff, 1e-5);
  }
  context.output_from = 0;
  context.record_probs = nullptr;
  auto reference = attn.forward(x, rope, 0, context);
  attn.to(torch::kBFloat16);
  auto bf16 = attn.forward(x.to(torch::kBFloat16), rope, 0, context);
  EXPECT_EQ(bf16.scalar_type(), torch::kBFloat16);
  EXPECT_LT(max_diff(bf16.to(torch::kFloat32), reference), 0.05 * reference.abs().max().item<double>());
}

TEST(Llama, GroupedQueryAttentionEqualsFullAttentionWithRepeatedHeads) {
  auto gqa = tiny_model(3, tiny_config(4, 2));
  Llama full(tiny_config(4, 4));
  torch::NoGradGuard no_grad;
  auto source = gqa->named_parameters(), target = full->named_parameters();
  for (auto& item : source) {
    auto value = item.value();
    const bool kv = item.key().find(".wk.") != std::string::npos || item.key().find(".wv.") != std::string::npos;
    if (kv) value = value.view({2, 8, 32}).repeat_interleave(2, 0).reshape({32, 32});  // (G*D, C) -> (H*D, C)
    target[item.key()].copy_(value);
  }
  const auto prompts = torch::randn({2, 32});
  auto tokens = random_tokens(2, 9, 8);
  const double diff = max_diff(logits_with_prompts(gqa, tokens, prompts), logits_with_prompts(full, tokens, prompts));
  std::printf("GQA vs repeated-head full attention: max |diff| = %.3g\n", diff);
  EXPECT_LT(diff, 1e-5);
}

TEST(Llama, RopeMatchesHandComputedRotation) {
  const int D = 8;
  RotaryEmbedding rope(D, 10000.0f);
  auto x = torch::randn({1, 2, 5, D});
  auto rotated = rope.apply(x, 300);  // positions 300..304 (beyond the initial table)
  auto xa = x.accessor<float, 4>(), ra = rotated.accessor<float, 4>();
  double worst = 0;
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 5; ++s)
      for (int i = 0; i < D / 2; ++i) {
        const double angle = (300 + s) * std::pow(10000.0, -2.0 * i / D);
        const double a = xa[0][h][s][2 * i], b = xa[0][h][s][2 * i + 1];
        worst = std::max(worst, std::abs(ra[0][h][s][2 * i] - (a * std::cos(angle) - b * std::sin(angle))));
        worst = std::max(worst, std::abs(ra[0][h][s][2 * i + 1] - (a * std::sin(angle) + b * std::cos(angle))));
      }
  std::printf("RoPE vs hand rotation: max |diff| = %.3g\n", worst);
  EXPECT_LT(worst, 1e-5);
}

// Prompts and column weights through a KV cache: a prefill of 6 tokens, then one token at a
// time, gives the logits of the full pass; a layer's cache keeps its prompt column count.
TEST(Llama, IncrementalDecodingWithCacheEqualsFullForward) {
  auto model = tiny_model();
  torch::NoGradGuard no_grad;
  auto tokens = random_tokens(2, 10, 9);
  const auto prompts = torch::randn({3, 32}), weights = torch::rand({2, 3});
  auto full = logits_with_prompts(model, tokens, prompts, weights, 2);  // (B, T, V)
  KVCache cache;
  std::vector<torch::Tensor> pieces{logits_with_prompts(model, tokens.slice(1, 0, 6), prompts, weights, 2, &cache)};
  for (int t = 6; t < 10; ++t) {
    LayerRun run;
    run.cache = &cache;
    auto h = model->run_layers(model->embed(tokens.slice(1, t, t + 1)), 0, 2, run);
    run.column_weights = weights;
    pieces.push_back(model->classify(model->run_layers(h, 2, 4, run), 0));
  }
  const double diff = max_diff(torch::cat(pieces, 1), full);
  std::printf("cached vs full forward: max |diff| = %.3g\n", diff);
  EXPECT_LT(diff, 1e-4);
  EXPECT_EQ(cache.length(0), 3 + 10);
  EXPECT_EQ(cache.prompt_columns[3], 3);
  // The backbone alone through the same cache machinery.
  KVCache plain;
  auto first = model->forward(tokens.slice(1, 0, 6), &plain);
  auto rest = model->forward(tokens.slice(1, 6), &plain);
  EXPECT_LT(max_diff(torch::cat({first, rest}, 1), model->forward(tokens)), 1e-4);
}

TEST(Llama, FrozenBackboneTrainsOnlyThePrompts) {
  auto model = tiny_model();
  model->freeze();
  auto prompts = torch::randn({3, 32}).requires_grad_(true);
  logits_with_prompts(model, random_tokens(1, 5, 11), prompts).sum().backward();
  for (auto& p : model->parameters()) EXPECT_FALSE(p.grad().defined());
  ASSERT_TRUE(prompts.grad().defined());
}

TEST(Llama, BadInputsGiveClearErrors) {
  auto model = tiny_model();
  torch::NoGradGuard no_grad;
  EXPECT_THROW(model->forward(torch::full({1, 3}, 50, torch::kLong)), Error);
  EXPECT_THROW(logits_with_prompts(model, random_tokens(1, 4, 1), torch::randn({3, 32}), torch::ones({5})), Error);
  EXPECT_THROW(model->run_layers(torch::randn({1, 4, 32}), 2, 5), Error);
  ModelConfig bad = tiny_config(4, 3);
  EXPECT_THROW(Llama{bad}, Error);
}

}  // namespace
}  // namespace mops
