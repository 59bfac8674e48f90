// The lower-half activation cache: the states it returns against the lower half run on the
// same batch, training with it against training without, its memory bound, a new P0 emptying
// it, and the --activation-cache option.
#include <gtest/gtest.h>

#include "activation_cache.h"
#include "prompted_forward.h"
#include "test_support.h"
#include "tiny_mops.h"

namespace mops {
namespace {

// tiny_examples with lengths 12, 11, 10, 9, ... (the answer cut short), so batches are padded.
std::vector<TokenizedExample> ragged_examples(size_t count, uint64_t seed) {
  auto examples = tiny_examples(count, seed);
  for (size_t i = 0; i < count; ++i) examples[i].ids.resize(examples[i].ids.size() - i % 4);
  return examples;
}

// The cached lower half against one padded pass: the states at the examples' own positions (0
// expected at their padding) and the gate's input.
void expect_states_of_batch(const LowerHalf& lower, Llama& backbone, PromptState& state,
                            const std::vector<TokenizedExample>& examples, const std::vector<size_t>& indices) {
  const auto batch = make_batch(examples, indices);
  const auto direct = lower_half(backbone, state, batch.ids, batch.question_mask);
  const auto& reference = direct.states;  // (B, K0 + T, C)
  const auto& cached = lower.states;
  ASSERT_EQ(cached.sizes(), reference.sizes());
  EXPECT_TRUE(lower.gate_input.allclose(direct.gate_input, 0, 1e-5));
  ASSERT_EQ(lower.hashed_expert.defined(), direct.hashed_expert.defined());
  if (direct.hashed_expert.defined()) {
    EXPECT_TRUE(lower.hashed_expert.equal(direct.hashed_expert));
  }
  const int64_t K0 = state->config().first_prompt_count;
  for (size_t b = 0; b < indices.size(); ++b) {
    const int64_t own = K0 + int64_t(examples[indices[b]].ids.size());
    const auto row = cached[int64_t(b)];
    EXPECT_TRUE(row.slice(0, 0, own).allclose(reference[int64_t(b)].slice(0, 0, own), 0, 1e-5)) << "example " << b;
    EXPECT_EQ(row.slice(0, own).abs().sum().item<double>(), 0.0) << "padding of example " << b;
  }
}

TEST(ActivationCache, ReturnsTheLowerHalfOfTheBatchAndServesRepeatsFromMemory) {
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kMop), 2);
  const auto examples = ragged_examples(8, 3);
  ActivationCache cache(int64_t(1) << 30);
  const std::vector<size_t> first = {0, 1, 2}, second = {2, 5, 1, 3};
  expect_states_of_batch(cache.lower(backbone, state, examples, first), backbone, state, examples, first);
  EXPECT_EQ(cache.computed(), 3);
  EXPECT_EQ(cache.hits(), 0);
  expect_states_of_batch(cache.lower(backbone, state, examples, second), backbone, state, examples, second);
  EXPECT_EQ(cache.computed(), 5);  // 5 and 3 are new
  EXPECT_EQ(cache.hits(), 2);      // 2 and 1 came from memory
  EXPECT_EQ(cache.cached_examples(), 5);
  int64_t bytes = 0;
  // (K0 + T_i) x C floats of states and C of the gate's input
  for (size_t i : {0, 1, 2, 3, 5}) bytes += (3 + int64_t(examples[i].ids.size()) + 1) * 16 * 4;
  EXPECT_EQ(cache.bytes(), bytes);
}

TEST(ActivationCache, TrainingWithItMatchesTrainingWithout) {
  const auto train = ragged_examples(6, 4), test = ragged_examples(4, 5);
  for (auto route : {GateRoute::kGate, GateRoute::kHash}) {
  SCOPED_TRACE(gate_route_name(route));
  std::vector<torch::Tensor> prompts, gates;
  std::vector<std::vector<double>> losses;
  for (bool cached : {false, true}) {
    auto backbone = tiny_backbone();
    auto config = tiny_mop(PromptMethod::kMop);
    config.gate_route = route;
    auto state = random_state(config, 6);
    ActivationCache cache(int64_t(1) << 30);
    TrainOptions options;
    options.steps = 12;  // 4 epochs of 6 examples at batch 2
    options.batch_size = 2;
    options.lr = 1e-2;
    options.lower_cache = cached ? &cache : nullptr;
    NullObserver observer;
    train_prompts(backbone, state, train, test, {"a", "b", "c", "d"}, options, observer);
    prompts.push_back(state->mid_prompts.detach().clone());
    gates.push_back(state->gate->parameters()[0].detach().clone());
    losses.push_back(observer.losses);
    if (cached) {
      EXPECT_EQ(cache.computed(), 6);  // each example once
      EXPECT_EQ(cache.hits(), 12 * 2 - 6);
    }
  }
  EXPECT_TRUE(prompts[1].allclose(prompts[0], 0, 1e-5)) << (prompts[1] - prompts[0]).abs().max();
  EXPECT_TRUE(gates[1].allclose(gates[0], 0, 1e-5));
  for (size_t s = 0; s < losses[0].size(); ++s) EXPECT_NEAR(losses[1][s], losses[0][s], 1e-5) << "step " << s + 1;
  }
}

TEST(ActivationCache, KeepsWithinItsBudgetAndStillComputesTheRest) {
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kPrompt), 7);
  // 12 tokens each: (3 + 12) x 16 floats of states and 16 of the gate's input = 1024 bytes
  const auto examples = tiny_examples(6, 8);
  ActivationCache cache(2 * 1024 + 100);
  const std::vector<size_t> all = {0, 1, 2, 3, 4, 5};
  expect_states_of_batch(cache.lower(backbone, state, examples, all), backbone, state, examples, all);
  EXPECT_EQ(cache.cached_examples(), 2);
  EXPECT_EQ(cache.bytes(), 2 * 1024);
  expect_states_of_batch(cache.lower(backbone, state, examples, all), backbone, state, examples, all);
  EXPECT_EQ(cache.hits(), 2);
  EXPECT_EQ(cache.computed(), 6 + 4);

  ActivationCache off(0);
  expect_states_of_batch(off.lower(backbone, state, examples, all), backbone, state, examples, all);
  EXPECT_EQ(off.cached_examples(), 0);
  EXPECT_NE(off.describe().find("off"), std::string::npos);
}

TEST(ActivationCache, ANewFirstPromptEmptiesIt) {
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kMop), 9);
  const auto examples = tiny_examples(4, 10);
  const std::vector<size_t> all = {0, 1, 2, 3};
  ActivationCache cache(int64_t(1) << 30);
  cache.lower(backbone, state, examples, all);
  {
    torch::NoGradGuard no_grad;
    state->first_prompts.add_(0.5);
  }
  expect_states_of_batch(cache.lower(backbone, state, examples, all), backbone, state, examples, all);
  EXPECT_EQ(cache.computed(), 8);
  EXPECT_EQ(cache.hits(), 0);
}

// An example's states are computed alone and unpadded: bit for bit the same whatever batch or
// order it first came in and whatever the budget (so the same on any number of MPI ranks).
TEST(ActivationCache, StatesDoNotDependOnBatchMatesOrBudget) {
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kMop), 13);
  const auto examples = ragged_examples(5, 14);
  ActivationCache together(int64_t(1) << 30), apart(2000);  // `apart` holds two examples
  const auto all = together.lower(backbone, state, examples, {0, 1, 2, 3, 4});
  apart.lower(backbone, state, examples, {3});
  const auto reordered = apart.lower(backbone, state, examples, {4, 3, 0, 2, 1});
  const std::vector<int64_t> position_in_all = {4, 3, 0, 2, 1};
  for (int64_t b = 0; b < 5; ++b) {
    const int64_t rows = 3 + int64_t(examples[size_t(position_in_all[size_t(b)])].ids.size());
    const int64_t a = position_in_all[size_t(b)];
    EXPECT_TRUE(reordered.states[b].slice(0, 0, rows).equal(all.states[a].slice(0, 0, rows))) << b;
    EXPECT_TRUE(reordered.gate_input[b].equal(all.gate_input[a])) << b;
  }
}

TEST(ActivationCache, AnotherMidLayerGateLayerOrGateRouteEmptiesIt) {
  auto backbone = tiny_backbone();
  auto config = tiny_mop(PromptMethod::kPrompt);
  auto at_two = random_state(config, 15);
  config.mid_layer = config.gate_layer = 1;
  auto at_one = random_state(config, 15);
  const auto examples = tiny_examples(3, 16);
  ActivationCache cache(int64_t(1) << 30);
  cache.lower(backbone, at_two, examples, {0, 1, 2});
  expect_states_of_batch(cache.lower(backbone, at_one, examples, {0, 1, 2}), backbone, at_one, examples, {0, 1, 2});
  EXPECT_EQ(cache.computed(), 6);
  EXPECT_EQ(cache.hits(), 0);
  config.gate_layer = 0;  // the gate's input from another layer: the same states, another input
  auto gate_at_zero = random_state(config, 15);
  expect_states_of_batch(cache.lower(backbone, gate_at_zero, examples, {0, 1, 2}), backbone, gate_at_zero, examples,
                         {0, 1, 2});
  EXPECT_EQ(cache.computed(), 9);
  EXPECT_EQ(cache.hits(), 0);
  config.gate_route = GateRoute::kHash;  // the hashed experts kept with the states
  auto hashed = random_state(config, 15);
  expect_states_of_batch(cache.lower(backbone, hashed, examples, {0, 1, 2}), backbone, hashed, examples, {0, 1, 2});
  EXPECT_EQ(cache.computed(), 12);
  EXPECT_EQ(cache.hits(), 0);
}

TEST(ActivationCache, BudgetOptionTakesAutoOrMebibytes) {
  EXPECT_EQ(activation_cache_budget("0", torch::kCPU).device_bytes, 0);
  EXPECT_EQ(activation_cache_budget("16", torch::kCPU).device_bytes, 16 << 20);
  EXPECT_EQ(activation_cache_budget("16", torch::kCPU).host_bytes, 0);  // no overflow tier on the CPU
  EXPECT_GE(activation_cache_budget("auto", torch::kCPU).device_bytes, 0);
  EXPECT_EQ(activation_cache_budget("auto", torch::kCPU).host_bytes, 0);
  for (const char* bad : {"-1", "lots", "12MB", ""}) {
    EXPECT_NE(error_of([&] { activation_cache_budget(bad, torch::kCPU); }).find("--activation-cache '"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace mops
