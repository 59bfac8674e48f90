// Pretraining: the learning-rate schedule by hand, a tiny model learning a patterned stream,
// the checkpoint it writes, and sampling rules of generation.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "build_paths.h"
#include "checkpoint.h"
#include "errors.h"
#include "generate.h"
#include "pretrain.h"

namespace mops {
namespace {

TEST(Pretrain, LearningRateWarmsUpThenFollowsTheCosine) {
  PretrainOptions o;
  o.steps = 110;
  o.warmup_steps = 10;
  o.lr = 1e-3;
  o.min_lr = 1e-4;
  EXPECT_DOUBLE_EQ(learning_rate(o, 0), 1e-4);   // 1/10 of the peak
  EXPECT_DOUBLE_EQ(learning_rate(o, 9), 1e-3);   // peak at the end of warm-up
  EXPECT_DOUBLE_EQ(learning_rate(o, 10), 1e-3);  // cosine starts at the peak
  EXPECT_NEAR(learning_rate(o, 60), 1e-4 + 0.5 * 9e-4, 1e-12);  // halfway
  EXPECT_NEAR(learning_rate(o, 110), 1e-4, 1e-12);
}

// Documents "BOS a a+1 a+2 ... EOS": next ids are predictable, so the loss must fall far.
TokenStreams counting_streams() {
  TokenStreams s;
  for (int doc = 0; doc < 200; ++doc) {
    auto& stream = doc % 10 == 0 ? s.test : s.train;
    stream.push_back(1);
    const int start = 3 + doc % 20;
    for (int i = 0; i < 12; ++i) stream.push_back(start + i);
    stream.push_back(2);
  }
  s.train_targets.assign(s.train.size(), 1);
  s.test_targets.assign(s.test.size(), 1);
  return s;
}

ModelConfig small_config() {
  ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 40;
  c.max_seq_len = 64;
  return c;
}

TEST(Pretrain, ATinyModelLearnsAPatternedStreamAndSavesIt) {
  torch::set_num_threads(1);
  Llama model(small_config());
  model->init_weights(3);
  const auto data = counting_streams();
  const double before = evaluate_stream(model, data.test, data.test_targets, 16, 8, 4);
  PretrainOptions o;
  o.steps = 150;
  o.batch_size = 8;
  o.seq_len = 16;
  o.lr = 3e-3;
  o.warmup_steps = 10;
  o.eval_every = 50;
  o.out = MOPS_TEST_WORK_DIR "/pretrain/counting.safetensors";
  std::filesystem::create_directories(MOPS_TEST_WORK_DIR "/pretrain");
  std::ostringstream log;
  const auto report = pretrain(model, data, o, log);
  std::printf("held-out loss %.3f -> %.3f\n", before, report.test_loss);
  EXPECT_GT(before, 3.0);  // about log(40) for random weights
  EXPECT_LT(report.test_loss, 1.5);
  EXPECT_EQ(report.tokens, 150 * 8 * 16);
  auto reloaded = load_model(o.out);
  EXPECT_EQ(reloaded.metadata.at("pretrain_step"), "150");
  auto original = model->named_parameters();
  for (const auto& item : reloaded.model->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), original[item.key()])) << item.key();
  }
}

TEST(Pretrain, SameSeedGivesBitIdenticalWeights) {
  std::filesystem::create_directories(MOPS_TEST_WORK_DIR "/pretrain");
  auto train_once = [] {
    Llama model(small_config());
    model->init_weights(11);
    PretrainOptions o;
    o.steps = 20;
    o.batch_size = 4;
    o.seq_len = 16;
    o.eval_every = 20;
    o.seed = 5;
    o.out = MOPS_TEST_WORK_DIR "/pretrain/determinism.safetensors";
    std::ostringstream log;
    pretrain(model, counting_streams(), o, log);
    return model;
  };
  auto a = train_once(), b = train_once();
  auto b_parameters = b->named_parameters();
  for (const auto& item : a->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), b_parameters[item.key()])) << item.key();
  }
}

TEST(Pretrain, BadOptionsAreRejectedBeforeTraining) {
  Llama model(small_config());
  PretrainOptions o;
  o.out = MOPS_TEST_WORK_DIR "/pretrain/never.safetensors";
  o.seq_len = 1000;  // beyond max_seq_len 64
  std::ostringstream log;
  EXPECT_THROW(pretrain(model, counting_streams(), o, log), Error);
  o.seq_len = 16;
  TokenStreams tiny;
  tiny.train = {1, 5, 2};
  tiny.train_targets = {1, 1, 1};
  EXPECT_THROW(pretrain(model, tiny, o, log), Error);
}

TEST(Sampling, TopPKeepsOnlyTheNucleus) {
  // probabilities ~ (0.7, 0.2, 0.1): with top-p 0.6 only the first survives.
  auto logits = torch::log(torch::tensor({0.7, 0.2, 0.1}, torch::kFloat32));
  SamplingOptions o;
  o.top_p = 0.6;
  for (double r : {0.0, 0.5, 0.999}) EXPECT_EQ(pick_token(logits, o, r), 0);
  o.top_p = 0.85;  // the first two: the draw splits 0.7 : 0.2
  EXPECT_EQ(pick_token(logits, o, 0.5), 0);
  EXPECT_EQ(pick_token(logits, o, 0.95), 1);
  o.top_p = 1.0;
  EXPECT_EQ(pick_token(logits, o, 0.95), 2);
  o.greedy = true;
  EXPECT_EQ(pick_token(logits, o, 0.95), 0);
}

TEST(Sampling, SameSeedSameTokensAndTheContextLimitStops) {
  Llama model(small_config());
  model->init_weights(5);
  SamplingOptions o;
  o.max_new_tokens = 100;
  o.seed = 42;
  const auto a = generate(model, {1, 5, 6}, o), b = generate(model, {1, 5, 6}, o);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.stop_reason, "context full");
  EXPECT_EQ(int(a.ids.size()), 64 - 3 + 1);  // the last one is produced from a full context
  o.seed = 43;
  EXPECT_NE(generate(model, {1, 5, 6}, o).ids, a.ids);
}

}  // namespace
}  // namespace mops
