// LoRA, IA3 and prefix tuning as methods (issue 18): LoRA and IA3 start as the frozen model with
// P0; each trains only its own tensors above L_mid, counts its parameters by hand, and
// round-trips through a results file.
#include <gtest/gtest.h>

#include "activation_cache.h"
#include "prompt_state_io.h"
#include "prompt_training.h"
#include "prompted_forward.h"
#include "test_support.h"
#include "tiny_mops.h"

namespace mops {
namespace {

MopConfig adapter_config(PromptMethod method, std::vector<std::string> targets = {"wq", "wv"}) {
  auto c = tiny_mop(method);
  c.lora_rank = 4;
  c.lora_targets = std::move(targets);
  return c.resolved(tiny_config());
}

// B = 0 and unit vectors: the prompted forward is P0 alone through the whole model.
TEST(AdapterMethods, StartAsTheFrozenModelWithP0) {
  auto backbone = tiny_backbone();
  const auto batch = make_batch(tiny_examples(5, 51), 0, 5);
  torch::NoGradGuard no_grad;
  for (auto method : {PromptMethod::kLora, PromptMethod::kIa3}) {
    auto state = random_state(adapter_config(method, {"wq", "wk", "wv", "wo", "w1", "w2", "w3"}), 52);
    const auto ours = prompted_forward(backbone, state, batch).logits;
    const auto p0_only = first_prompts_forward(backbone, state, batch.ids);
    EXPECT_TRUE(ours.allclose(p0_only, 0, 1e-5)) << method_name(method) << " " << (ours - p0_only).abs().max();
  }
}

// r (in + out) per LoRA target and layer, (2 G D + F) per IA3 layer, for the 2 layers >= L_mid = 2
// of the tiny model (C 16, G D 8, F 24); no mid prompts, no gate.
TEST(AdapterMethods, TrainableParametersAreTheAdaptersOnly) {
  auto lora = random_state(adapter_config(PromptMethod::kLora), 53);
  EXPECT_EQ(lora->trained_values(), 2 * (4 * (16 + 16) + 4 * (16 + 8)));
  EXPECT_FALSE(lora->mid_prompts.defined());
  EXPECT_FALSE(lora->gate);
  EXPECT_FALSE(lora->adapters[1].wq.defined());  // nothing below L_mid
  EXPECT_TRUE(lora->adapters[2].wq.defined() && lora->adapters[3].wv.defined());
  EXPECT_FALSE(lora->adapters[2].wk.defined());
  auto ia3 = random_state(adapter_config(PromptMethod::kIa3), 54);
  EXPECT_EQ(ia3->trained_values(), 2 * (8 + 8 + 24));
  auto prefix = random_state(adapter_config(PromptMethod::kPrefix), 54);  // E x P = 8 keys and values of G D = 8
  EXPECT_EQ(prefix->trained_values(), 2 * 2 * 8 * 8);
  EXPECT_EQ(prefix->adapters[2].prefix_length(), 8);
  auto mop = random_state(tiny_mop(PromptMethod::kMop), 55);
  EXPECT_EQ(mop->trained_values(), 4 * 2 * 16 + (16 * 8 + 8) + (8 * 4 + 4));  // mid prompts, gate w1, w2
}

// Local training moves the adapters (B leaves 0), lowers the loss, and leaves P0 alone.
TEST(AdapterMethods, TrainingMovesOnlyTheAdapters) {
  const auto train = tiny_examples(8, 56);
  for (auto method : {PromptMethod::kLora, PromptMethod::kIa3, PromptMethod::kPrefix}) {
    SCOPED_TRACE(method_name(method));
    auto backbone = tiny_backbone();
    auto state = random_state(adapter_config(method), 57);
    const auto p0 = state->first_prompts.detach().clone();
    std::vector<torch::Tensor> before;
    for (const auto& t : state->trained()) before.push_back(t.detach().clone());
    TrainOptions options;
    options.steps = 30;
    options.batch_size = 4;
    options.lr = 1e-2;
    NullObserver observer;
    train_prompts(backbone, state, train, train, {"a", "b", "c", "d"}, options, observer);
    const auto trained = state->trained();
    for (size_t i = 0; i < trained.size(); ++i) EXPECT_FALSE(trained[i].equal(before[i])) << "tensor " << i;
    EXPECT_TRUE(state->first_prompts.equal(p0));
    EXPECT_LT(observer.losses.back(), observer.losses.front());
  }
}

TEST(AdapterMethods, RoundTripThroughAResultsFile) {
  const auto dir = fresh_test_dir("adapters");
  for (auto method : {PromptMethod::kLora, PromptMethod::kIa3, PromptMethod::kPrefix}) {
    auto config = adapter_config(method, {"wk", "w2"});
    config.lora_alpha = 3;
    auto state = random_state(config, 58);
    {
      torch::NoGradGuard no_grad;
      for (auto& t : state->trained()) t.normal_();
    }
    ResultsHeader header;
    header.method = method_name(method);
    header.mode = "centralized";
    header.tasks = {"a", "b", "c", "d"};
    header.experts = 4;
    header.prompts_per_expert = 2;
    const auto path = (dir / (std::string(method_name(method)) + ".h5")).string();
    {
      ResultsFile results(path, header);
      write_prompt_state(results, state);
    }
    auto loaded = read_prompt_state(path, tiny_config());
    EXPECT_EQ(loaded->config().method, method);
    EXPECT_EQ(loaded->config().lora_targets, (std::vector<std::string>{"wk", "w2"}));
    EXPECT_EQ(loaded->config().lora_alpha, 3);
    const auto ours = state->trained(), theirs = loaded->trained();
    ASSERT_EQ(ours.size(), theirs.size());
    for (size_t i = 0; i < ours.size(); ++i) EXPECT_TRUE(ours[i].equal(theirs[i])) << i;
    if (method == PromptMethod::kLora) {
      EXPECT_EQ(loaded->adapters[3].w2.scale, 3.0 / 4);
    }
  }
}

// --lora-layers all: adapters in all 4 layers; the prompted forward is then the frozen model with
// P0 and W + s B A merged into every layer's wq and wv; gradients reach the lower layers' adapters;
// training ignores the activation cache (the lower half is no longer frozen) and gives the same
// tensors with it as without.
TEST(AdapterMethods, LoraInAllLayersAdaptsTheLowerHalfToo) {
  auto config = adapter_config(PromptMethod::kLora);
  config.lora_all_layers = true;
  config = config.resolved(tiny_config());
  EXPECT_TRUE(config.trains_lower_half());
  auto state = random_state(config, 59);
  EXPECT_EQ(state->trained_values(), 4 * (4 * (16 + 16) + 4 * (16 + 8)));
  ASSERT_TRUE(state->adapters[0].wq.defined() && state->adapters[1].wv.defined());
  {
    torch::NoGradGuard no_grad;
    for (auto& t : state->adapter_tensors()) t.add_(torch::randn_like(t) * 0.3);
  }
  auto backbone = tiny_backbone();
  auto merged = tiny_backbone();
  {
    torch::NoGradGuard no_grad;
    for (int l = 0; l < 4; ++l) {
      const auto& a = state->adapters[size_t(l)];
      merged->block(l)->attention->wq->weight.add_(a.wq.b.mm(a.wq.a) * a.wq.scale);
      merged->block(l)->attention->wv->weight.add_(a.wv.b.mm(a.wv.a) * a.wv.scale);
    }
  }
  const auto batch = make_batch(tiny_examples(4, 60), 0, 4);
  const auto ours = prompted_forward(backbone, state, batch).logits;
  {
    torch::NoGradGuard no_grad;
    const auto reference = first_prompts_forward(merged, state, batch.ids);
    EXPECT_TRUE(ours.allclose(reference, 0, 1e-4)) << (ours - reference).abs().max();
  }
  response_loss(ours, batch).backward();
  EXPECT_GT(state->adapters[0].wq.a.grad().abs().sum().item<double>(), 0);
  EXPECT_GT(state->adapters[1].wv.b.grad().abs().sum().item<double>(), 0);

  const auto train = tiny_examples(8, 61);
  auto trained_with = [&](ActivationCache* cache) {
    auto s = random_state(config, 62);
    TrainOptions options;
    options.steps = 6;
    options.batch_size = 2;
    options.lower_cache = cache;
    NullObserver observer;
    train_prompts(backbone, s, train, train, {"a", "b", "c", "d"}, options, observer);
    return s->trained();
  };
  ActivationCache cache(int64_t(1) << 30);
  const auto with_cache = trained_with(&cache), without = trained_with(nullptr);
  ASSERT_EQ(with_cache.size(), without.size());
  for (size_t i = 0; i < without.size(); ++i) EXPECT_TRUE(with_cache[i].equal(without[i])) << "tensor " << i;
  EXPECT_EQ(cache.cached_examples(), 0) << "the cache stored lower-half states that LoRA in all layers changes";
}

// --lora-dropout: training draws masks (another result than without, the same on a second run),
// evaluation does not (the forward is unchanged by the option).
TEST(AdapterMethods, LoraDropoutChangesTrainingNotEvaluation) {
  auto backbone = tiny_backbone();
  const auto train = tiny_examples(8, 63);
  auto trained = [&](double dropout) {
    auto config = adapter_config(PromptMethod::kLora);
    config.lora_dropout = dropout;
    auto state = random_state(config.resolved(tiny_config()), 64);
    TrainOptions options;
    options.steps = 6;
    options.batch_size = 2;
    NullObserver observer;
    train_prompts(backbone, state, train, train, {"a", "b", "c", "d"}, options, observer);
    return state;
  };
  auto plain = trained(0), dropped = trained(0.5), again = trained(0.5);
  const auto b = [](PromptState& s) { return s->adapters[2].wq.b; };
  EXPECT_FALSE(b(dropped).equal(b(plain)));
  EXPECT_TRUE(b(dropped).equal(b(again)));
  const auto batch = make_batch(train, 0, 4);
  auto same = trained(0.5);
  for (auto& adapter : same->adapters) adapter.wq.dropout = adapter.wv.dropout = 0;
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(prompted_forward(backbone, dropped, batch).logits.equal(prompted_forward(backbone, same, batch).logits));
}

TEST(AdapterMethods, ImpossibleLoraSettingsAreClearErrors) {
  auto config = tiny_mop(PromptMethod::kLora);
  config.lora_targets = {"wq", "wz"};
  EXPECT_NE(error_of([&] { config.resolved(tiny_config()); }).find("'wz' is not one of wq, wk, wv, wo, w1, w2, w3"),
            std::string::npos);
  config.lora_targets = {};
  EXPECT_NE(error_of([&] { config.resolved(tiny_config()); }).find("--lora-targets names no matrix"), std::string::npos);
  config.lora_targets = {"wq"};
  config.lora_dropout = 1;
  EXPECT_NE(error_of([&] { config.resolved(tiny_config()); }).find("--lora-dropout 1 is outside [0, 1)"), std::string::npos);
  config.lora_dropout = 0;
  config.lora_rank = 0;
  EXPECT_NE(error_of([&] { config.resolved(tiny_config()); }).find("--lora-rank 0 must be at least 1"), std::string::npos);
}

}  // namespace
}  // namespace mops
