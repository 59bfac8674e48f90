// LoRA and IA3 inside the frozen backbone (layer_adapter.h), each against the same backbone with
// the change merged into its weights by hand (LoRA: W + s B A; IA3: the rows of wk and wv, and
// the columns of w2, scaled), which is how PEFT merges them; identity at LoRA's zero B and IA3's
// unit vectors; a prefix against the attention written out by hand; gradients; and incremental
// decoding with a KV cache.
#include <gtest/gtest.h>

#include "llama.h"
#include "tiny_mops.h"

namespace mops {
namespace {

constexpr int kRank = 3;
constexpr double kScale = 0.5;  // alpha / r

LowRankUpdate random_update(int64_t in, int64_t out, at::Generator& gen) {
  return {torch::randn({kRank, in}, gen) * 0.3, torch::randn({out, kRank}, gen) * 0.3, kScale};
}

// One LayerAdapter per layer of the tiny model (4 layers), layers >= 2 filled by `fill` from one
// seeded stream.
template <class Fill>
std::vector<LayerAdapter> upper_layers(uint64_t seed, Fill fill) {
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<LayerAdapter> adapters(size_t(tiny_config().n_layers));
  for (size_t l = 2; l < adapters.size(); ++l) fill(adapters[l], gen);
  return adapters;
}

// Every LoRA target given an update.
std::vector<LayerAdapter> lora_everywhere(uint64_t seed) {
  const auto c = tiny_config();
  return upper_layers(seed, [&](LayerAdapter& a, at::Generator& gen) {
    a.wq = random_update(c.dim, c.dim, gen);
    a.wk = random_update(c.dim, c.kv_dim(), gen);
    a.wv = random_update(c.dim, c.kv_dim(), gen);
    a.wo = random_update(c.dim, c.dim, gen);
    a.w1 = random_update(c.dim, c.hidden_dim, gen);
    a.w3 = random_update(c.dim, c.hidden_dim, gen);
    a.w2 = random_update(c.hidden_dim, c.dim, gen);
  });
}

std::vector<LayerAdapter> ia3_everywhere(uint64_t seed) {
  const auto c = tiny_config();
  return upper_layers(seed, [&](LayerAdapter& a, at::Generator& gen) {
    a.key_scale = 1 + 0.5 * torch::randn({c.kv_dim()}, gen);
    a.value_scale = 1 + 0.5 * torch::randn({c.kv_dim()}, gen);
    a.hidden_scale = 1 + 0.5 * torch::randn({c.hidden_dim}, gen);
  });
}

void add_merged(torch::Tensor& weight, const LowRankUpdate& u) { weight.add_(u.b.mm(u.a) * u.scale); }

// The tiny backbone with `adapters` merged into its weights.
Llama merged_backbone(const std::vector<LayerAdapter>& adapters) {
  auto model = tiny_backbone();
  torch::NoGradGuard no_grad;
  for (int l = 0; l < tiny_config().n_layers; ++l) {
    const auto& a = adapters[size_t(l)];
    auto attention = model->block(l)->attention;
    auto ffn = model->block(l)->feed_forward;
    if (a.wq.defined()) add_merged(attention->wq->weight, a.wq);
    if (a.wk.defined()) add_merged(attention->wk->weight, a.wk);
    if (a.wv.defined()) add_merged(attention->wv->weight, a.wv);
    if (a.wo.defined()) add_merged(attention->wo->weight, a.wo);
    if (a.w1.defined()) add_merged(ffn->w1->weight, a.w1);
    if (a.w3.defined()) add_merged(ffn->w3->weight, a.w3);
    if (a.w2.defined()) add_merged(ffn->w2->weight, a.w2);
    if (a.key_scale.defined()) attention->wk->weight.mul_(a.key_scale.unsqueeze(1));
    if (a.value_scale.defined()) attention->wv->weight.mul_(a.value_scale.unsqueeze(1));
    if (a.hidden_scale.defined()) ffn->w2->weight.mul_(a.hidden_scale.unsqueeze(0));
  }
  return model;
}

torch::Tensor ids() { return torch::tensor({{1, 5, 9, 12, 3, 7, 30, 31}, {1, 22, 4, 8, 16, 2, 33, 38}}, torch::kLong); }

torch::Tensor forward_with(Llama& model, const std::vector<LayerAdapter>* adapters) {
  LayerRun run;
  run.adapters = adapters;
  return model->classify(model->run_layers(model->embed(ids()), 0, tiny_config().n_layers, run), 0);  // (B, T, V)
}

TEST(LayerAdapter, LoraOnEveryTargetEqualsTheMergedWeights) {
  auto model = tiny_backbone();
  const auto adapters = lora_everywhere(3);
  auto merged = merged_backbone(adapters);
  torch::NoGradGuard no_grad;
  const auto ours = forward_with(model, &adapters), reference = forward_with(merged, nullptr);
  const auto plain = forward_with(model, nullptr);
  std::printf("max |LoRA - merged| = %.2e, |LoRA - frozen| = %.2e\n", (ours - reference).abs().max().item<float>(),
              (ours - plain).abs().max().item<float>());
  EXPECT_TRUE(ours.allclose(reference, 1e-4, 1e-4));
  EXPECT_FALSE(ours.allclose(plain, 1e-2, 1e-2));
}

TEST(LayerAdapter, Ia3ScalingsEqualTheMergedWeights) {
  auto model = tiny_backbone();
  const auto adapters = ia3_everywhere(4);
  auto merged = merged_backbone(adapters);
  torch::NoGradGuard no_grad;
  const auto ours = forward_with(model, &adapters), reference = forward_with(merged, nullptr);
  std::printf("max |IA3 - merged| = %.2e\n", (ours - reference).abs().max().item<float>());
  EXPECT_TRUE(ours.allclose(reference, 1e-4, 1e-4));
  EXPECT_FALSE(ours.allclose(forward_with(model, nullptr), 1e-2, 1e-2));
}

// LoRA's usual start (B = 0) and IA3's (vectors of ones) are the frozen model (to float rounding:
// the sums make the keys and values contiguous, which may take another attention kernel).
TEST(LayerAdapter, ZeroLoraBAndUnitIa3VectorsLeaveTheOutputUnchanged) {
  auto model = tiny_backbone();
  auto adapters = lora_everywhere(5);
  const auto scalings = ia3_everywhere(5);
  for (size_t l = 0; l < adapters.size(); ++l) {
    for (auto* u : {&adapters[l].wq, &adapters[l].wk, &adapters[l].wv, &adapters[l].wo, &adapters[l].w1,
                    &adapters[l].w2, &adapters[l].w3}) {
      if (u->defined()) u->b = torch::zeros_like(u->b);
    }
    if (scalings[l].key_scale.defined()) {
      adapters[l].key_scale = torch::ones_like(scalings[l].key_scale);
      adapters[l].value_scale = torch::ones_like(scalings[l].value_scale);
      adapters[l].hidden_scale = torch::ones_like(scalings[l].hidden_scale);
    }
  }
  torch::NoGradGuard no_grad;
  const auto ours = forward_with(model, &adapters), frozen = forward_with(model, nullptr);
  std::printf("max |zero LoRA, unit IA3 - frozen| = %.2e\n", (ours - frozen).abs().max().item<float>());
  EXPECT_TRUE(ours.allclose(frozen, 0, 1e-5));
}

// The loss reaches every adapter tensor and none of the frozen weights; layers without an adapter
// have nothing to train.
TEST(LayerAdapter, GradientsReachTheAdaptersOnly) {
  auto model = tiny_backbone();
  auto adapters = lora_everywhere(6);
  const auto scalings = ia3_everywhere(6);
  std::vector<torch::Tensor> trained;
  for (size_t l = 0; l < adapters.size(); ++l) {
    adapters[l].key_scale = scalings[l].key_scale;
    adapters[l].value_scale = scalings[l].value_scale;
    adapters[l].hidden_scale = scalings[l].hidden_scale;
    for (auto* t : {&adapters[l].wq.a, &adapters[l].wq.b, &adapters[l].wv.a, &adapters[l].w2.b, &adapters[l].key_scale,
                    &adapters[l].value_scale, &adapters[l].hidden_scale}) {
      if (t->defined()) trained.push_back(t->requires_grad_());
    }
  }
  ASSERT_EQ(trained.size(), 2u * 7);
  forward_with(model, &adapters).pow(2).mean().backward();
  for (size_t i = 0; i < trained.size(); ++i) {
    ASSERT_TRUE(trained[i].grad().defined()) << i;
    EXPECT_GT(trained[i].grad().abs().sum().item<double>(), 0) << i;
  }
  for (const auto& p : model->parameters()) EXPECT_FALSE(p.grad().defined());
}

std::vector<LayerAdapter> prefix_everywhere(uint64_t seed, int64_t length) {
  const auto c = tiny_config();
  return upper_layers(seed, [&](LayerAdapter& a, at::Generator& gen) {
    a.prefix_keys = torch::randn({length, c.kv_dim()}, gen);
    a.prefix_values = torch::randn({length, c.kv_dim()}, gen);
  });
}

// One token at position 0 (where RoPE is the identity) through layer 3 with a prefix of 2: each
// query head h attends, in its key/value head h / R, to [the 2 prefix keys | its own key] with
// softmax(q . k / sqrt(D)) and mixes [the 2 prefix values | its own value]; then wo, the residual
// and the feed-forward as the block computes them.
TEST(LayerAdapter, PrefixIsAttendedToAsWrittenOutByHand) {
  auto model = tiny_backbone();
  const auto c = tiny_config();
  const int64_t H = c.n_heads, G = c.n_kv_heads, D = c.head_dim(), R = H / G;
  const auto adapters = prefix_everywhere(8, 2);
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(9);
  const auto x = torch::randn({1, 1, c.dim}, gen);  // (B, T, C)
  LayerRun run;
  run.adapters = &adapters;
  const auto ours = model->run_layers(x, 3, 4, run);  // (1, 1, C)
  auto block = model->block(3);
  const auto xn = block->attention_norm(x)[0][0];  // (C)
  const auto q = torch::matmul(block->attention->wq->weight, xn).view({H, D});
  const auto k = torch::matmul(block->attention->wk->weight, xn).view({G, D});
  const auto v = torch::matmul(block->attention->wv->weight, xn).view({G, D});
  const auto pk = adapters[3].prefix_keys.view({2, G, D}), pv = adapters[3].prefix_values.view({2, G, D});
  std::vector<torch::Tensor> heads;
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / R;
    const auto keys = torch::stack({pk[0][g], pk[1][g], k[g]});    // (3, D)
    const auto values = torch::stack({pv[0][g], pv[1][g], v[g]});  // (3, D)
    const auto p = torch::softmax(torch::matmul(keys, q[h]) / std::sqrt(double(D)), 0);  // (3)
    heads.push_back(torch::matmul(p, values));                                          // (D)
  }
  const auto h1 = x[0][0] + torch::matmul(block->attention->wo->weight, torch::cat(heads));  // (C)
  const auto reference = h1 + block->feed_forward->forward(block->ffn_norm(h1.view({1, 1, -1})))[0][0];
  std::printf("max |prefix - by hand| = %.2e\n", (ours[0][0] - reference).abs().max().item<float>());
  EXPECT_TRUE(ours[0][0].allclose(reference, 1e-5, 1e-5));
  EXPECT_FALSE(ours.allclose(model->run_layers(x, 3, 4), 1e-3, 1e-3));  // the prefix changes the layer
}

// Decoding token by token with a KV cache gives the logits of one full pass, with adapters.
TEST(LayerAdapter, IncrementalDecodingWithAdaptersEqualsTheFullForward) {
  auto model = tiny_backbone();
  auto adapters = lora_everywhere(7);
  const auto scalings = ia3_everywhere(7);
  const auto prefixes = prefix_everywhere(7, 3);
  for (size_t l = 0; l < adapters.size(); ++l) {
    adapters[l].key_scale = scalings[l].key_scale;
    adapters[l].prefix_keys = prefixes[l].prefix_keys;  // positionless: the tokens' positions stay
    adapters[l].prefix_values = prefixes[l].prefix_values;
  }
  torch::NoGradGuard no_grad;
  const auto full = forward_with(model, &adapters);  // (B, T, V)
  KVCache cache;
  LayerRun run;
  run.adapters = &adapters;
  run.cache = &cache;
  const auto all = ids();
  const int L = tiny_config().n_layers;
  auto first = model->classify(model->run_layers(model->embed(all.slice(1, 0, 5)), 0, L, run), 0);  // (B, 5, V)
  EXPECT_TRUE(first.allclose(full.slice(1, 0, 5), 1e-4, 1e-5));
  for (int64_t t = 5; t < all.size(1); ++t) {
    auto next = model->classify(model->run_layers(model->embed(all.slice(1, t, t + 1)), 0, L, run), 0);  // (B, 1, V)
    EXPECT_TRUE(next.allclose(full.slice(1, t, t + 1), 1e-4, 1e-5)) << "token " << t;
  }
}

// Dropout on the update's input (PEFT's lora_dropout): with A and B identities every element of
// the update is 0 or x / (1 - p), zero in about p of them; the same stream gives the same mask;
// without a stream (evaluation) there is none.
TEST(LayerAdapter, LoraDropoutZeroesTheUpdatesInputInTrainingOnly) {
  const int64_t n = 64;
  LowRankUpdate update{torch::eye(n), torch::eye(n), 1.0, 0.25};
  auto gen = at::detail::createCPUGenerator(7);
  const auto x = torch::randn({40, n}, gen) + 3;  // (40, n), no zeros
  const auto y = torch::zeros({40, n});
  EXPECT_TRUE(plus_update(y, update, x).equal(update(x)));
  auto masks = at::detail::createCPUGenerator(8), again = at::detail::createCPUGenerator(8);
  const auto dropped = plus_update(y, update, x, &masks);
  const auto zero = dropped == 0, kept = (dropped - x / 0.75).abs() < 1e-5;
  EXPECT_TRUE((zero | kept).all().item<bool>());
  EXPECT_NEAR(zero.to(torch::kDouble).mean().item<double>(), 0.25, 0.03);
  EXPECT_TRUE(plus_update(y, update, x, &again).equal(dropped));
}

}  // namespace
}  // namespace mops
