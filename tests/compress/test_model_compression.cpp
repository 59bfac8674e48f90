// Compressing a whole model: which tensors change, exact patterns per matrix, sparsity 0 as a
// no-op, the int8 checkpoint round trip, and `mops prune` on the embedded base model.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint.h"
#include "model_compression.h"
#include "safetensors.h"
#include "test_support.h"

namespace mops {
namespace {

Llama tiny_model(uint64_t seed) {
  ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 50;
  c.max_seq_len = 64;
  Llama model(c);
  model->init_weights(seed);
  model->eval();
  return model;
}

torch::Tensor random_tokens(int64_t B, int64_t T, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randint(0, 50, {B, T}, gen, torch::kLong);
}

std::map<std::string, torch::Tensor> copy_parameters(Llama& model) {
  std::map<std::string, torch::Tensor> copy;
  for (const auto& item : model->named_parameters()) copy[item.key()] = item.value().detach().clone();
  return copy;
}

CompressionOptions options_for(PruneMethod method, SparsityPattern pattern, bool int8) {
  CompressionOptions options;
  options.method = method;
  options.pattern = pattern;
  options.int8 = int8;
  options.micro_batch = 3;  // not a divisor of the 8 sequences
  return options;
}

TEST(ModelCompression, ZeroSparsityLeavesTheModelBitIdentical) {
  auto model = tiny_model(1);
  const auto before = copy_parameters(model);
  std::ostringstream log;
  compress_model(model, random_tokens(8, 32, 2), options_for(PruneMethod::kSparseGpt, unstructured_pattern(0), false), log);
  for (const auto& item : model->named_parameters()) EXPECT_TRUE(item.value().equal(before.at(item.key()))) << item.key();
}

TEST(ModelCompression, EveryBlockMatrixIsPrunedExactlyAndNothingElseChanges) {
  for (auto method : {PruneMethod::kSparseGpt, PruneMethod::kWanda, PruneMethod::kMagnitude}) {
    auto model = tiny_model(3);
    const auto before = copy_parameters(model);
    std::ostringstream log;
    const auto result = compress_model(model, random_tokens(8, 32, 4),
                                       options_for(method, unstructured_pattern(0.6), false), log);
    const auto compressed = compressible_parameters(model->config());
    EXPECT_EQ(result.matrices.size(), compressed.size());  // 7 per layer
    auto parameters = model->named_parameters();
    for (const auto& name : compressed) {
      EXPECT_EQ((parameters[name] == 0).sum().item<int64_t>(), std::llround(0.6 * parameters[name].numel())) << name;
    }
    for (const auto& item : parameters) {
      const bool is_compressed = std::find(compressed.begin(), compressed.end(), item.key()) != compressed.end();
      if (!is_compressed) {
        EXPECT_TRUE(item.value().equal(before.at(item.key()))) << item.key();
      }
    }
    for (const auto& m : result.matrices) {
      EXPECT_GT(m.relative_error, 0) << m.name;
      EXPECT_LT(m.relative_error, 1.5) << m.name;
    }
  }
}

TEST(ModelCompression, Int8CheckpointRoundTripsAndKeepsThePattern) {
  const auto dir = fresh_test_dir("compression");
  auto model = tiny_model(5);
  std::ostringstream log;
  const auto options = options_for(PruneMethod::kSparseGpt, parse_nm_pattern("2:4"), true);
  const auto result = compress_model(model, random_tokens(8, 32, 6), options, log);
  ASSERT_EQ(result.int8_weights.size(), compressible_parameters(model->config()).size());
  const auto path = (dir / "compressed.safetensors").string();
  save_model(model, path, {{"compression", compression_record(options, result).dump()}}, result.int8_weights);

  SafetensorsReader reader(path);
  EXPECT_EQ(reader.dtype("layers.0.attention.wq.weight"), "I8");
  EXPECT_EQ(reader.dtype("layers.0.attention.wq.weight_scale"), "F32");
  EXPECT_EQ(reader.dtype("tok_embeddings.weight"), "F32");
  auto loaded = load_model(path);
  for (const auto& item : model->named_parameters()) {
    EXPECT_TRUE(loaded.model->named_parameters()[item.key()].equal(item.value())) << item.key();
  }
  for (const auto& name : compressible_parameters(model->config())) {
    auto groups = (loaded.model->named_parameters()[name] == 0).reshape({-1, 4}).sum(1);
    EXPECT_TRUE((groups >= 2).all().item<bool>()) << name;
  }
  const auto record = nlohmann::json::parse(loaded.metadata.at("compression"));
  EXPECT_EQ(record["method"], "sparsegpt");
  EXPECT_EQ(record["pattern"], "2:4");
  EXPECT_EQ(record["int8"], true);
  const auto tokens = random_tokens(2, 10, 7);
  EXPECT_TRUE(loaded.model->forward(tokens).equal(model->forward(tokens)));
}

TEST(ModelCompression, MismatchedInt8StorageIsRefused) {
  const auto dir = fresh_test_dir("compression");
  auto model = tiny_model(8);
  const std::string name = "layers.0.attention.wq.weight";
  auto int8 = quantize_int8(model->named_parameters()[name]);  // the model still holds float weights
  EXPECT_NE(error_of([&] { save_model(model, (dir / "x.safetensors").string(), {}, {{name, int8}}); })
                .find("does not match the model's weights"),
            std::string::npos);
}

// `mops prune` on the embedded base model with a small calibration set.
std::string prune_args(const std::string& model, const std::string& out, const std::string& extra,
                       int calib_samples = 4) {
  return "prune --model " + model + " --out " + out + " --tokenizer " MOPS_SOURCE_DIR
         "/models/skills7-tokenizer.model --data skills7 --skills7-per-task 60 --calib-samples " +
         std::to_string(calib_samples) + " --calib-seqlen 64 --threads 1 " + extra;
}

TEST(MopsPrune, CompressesTheBaseModelAndRefusesToCompressTwice) {
  const auto dir = fresh_test_dir("compression");
  const std::string base = MOPS_SOURCE_DIR "/models/skills7-base.safetensors";
  const auto out = (dir / "pruned.safetensors").string();
  const auto run = run_mops(prune_args(base, out, "--method sparsegpt --nm 2:4 --int8"));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("feed_forward.w2"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("test perplexity"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("sparsegpt 2:4 + int8"), std::string::npos) << run.output;
  const auto record = nlohmann::json::parse(load_model(out).metadata.at("compression"));
  EXPECT_GT(record["perplexity_after"]["overall"].get<double>(), 1.0);
  EXPECT_GE(record["achieved_sparsity"].get<double>(), 0.5);

  const auto twice = run_mops(prune_args(out, (dir / "twice.safetensors").string(), "--sparsity 0.5"));
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.output.find("is already compressed"), std::string::npos) << twice.output;
}

TEST(MopsPrune, ImpossibleSettingsAreClearErrors) {
  const auto dir = fresh_test_dir("compression");
  const std::string base = MOPS_SOURCE_DIR "/models/skills7-base.safetensors";
  const auto out = (dir / "x.safetensors").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--sparsity 1", "outside its range [0, 1)"},
      {"--sparsity 0.5 --nm 2:4", "exactly one of --sparsity"},
      {"--nm 4:4", "0 < N < M"},
      {"--nm 2:3", "does not divide the input width 128"},
      {"--sparsity 0.5", "calibration set is too small"},
      {"--sparsity 0.5 --method pruning", "not one of sparsegpt, wanda, magnitude"},
  };
  for (const auto& [extra, message] : cases) {
    const bool too_small = message == std::string("calibration set is too small");
    const auto run = run_mops(prune_args(base, out, extra, too_small ? 100000 : 4));
    EXPECT_NE(run.exit_code, 0) << extra;
    EXPECT_NE(run.output.find(message), std::string::npos) << extra << "\n" << run.output;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace mops
