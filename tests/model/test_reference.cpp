// The checkpoint loaders and generation against an independent NumPy reference
// (tests/reference/llama2c_reference.py, run by ctest before these tests): the real
// stories260K llama2.c model, and Hugging Face conversions of it (F32, sharded+untied, BF16, F16).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "build_paths.h"
#include "checkpoint.h"
#include "generate.h"
#include "safetensors.h"
#include "test_support.h"

namespace mops {
namespace {

// Where ctest's reference_stories260k step wrote its outputs (tests/CMakeLists.txt).
std::string reference_dir() { return MOPS_TEST_WORK_DIR "/reference"; }

nlohmann::json reference() {
  std::ifstream in(reference_dir() + "/reference.json");
  EXPECT_TRUE(in) << "run tests/reference/llama2c_reference.py first (ctest does)";
  return nlohmann::json::parse(in);
}

torch::Tensor read_logits(const std::string& file, const nlohmann::json& ref) {
  return read_float32_file(reference_dir() + "/" + file, ref["logits_shape"].get<std::vector<int64_t>>());
}

// Logits of `model_path` for the reference ids, max |difference| from the reference file.
double logits_difference(const std::string& model_path, const std::string& logits_file) {
  const auto ref = reference();
  auto model = load_model(model_path).model;
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor(ref["ids"].get<std::vector<int64_t>>(), torch::kLong).unsqueeze(0);
  auto ours = model->forward(ids)[0];  // (T, V)
  const double diff = (ours - read_logits(logits_file, ref)).abs().max().item<double>();
  std::printf("%s vs %s: max |diff| = %.3g\n", model_path.c_str(), logits_file.c_str(), diff);
  return diff;
}

const std::string kStories = MOPS_SHARED_DIR "/models/stories260K.bin";

TEST(ReferenceLlama2c, LogitsMatchNumPy) { EXPECT_LT(logits_difference(kStories, "logits.f32"), 1e-4); }

TEST(ReferenceLlama2c, GreedyGenerationMatchesTokenForToken) {
  const auto ref = reference();
  auto model = load_model(kStories).model;
  SamplingOptions options;
  options.greedy = true;
  options.max_new_tokens = int(ref["greedy_ids"].size());
  const auto result = generate(model, ref["greedy_prompt"].get<std::vector<int64_t>>(), options);
  EXPECT_EQ(result.ids, ref["greedy_ids"].get<std::vector<int64_t>>());
}

TEST(ReferenceHuggingFace, SingleFileF32) { EXPECT_LT(logits_difference(reference_dir() + "/hf", "logits.f32"), 1e-4); }

TEST(ReferenceHuggingFace, ShardedUntiedF32) {
  EXPECT_LT(logits_difference(reference_dir() + "/hf_sharded", "logits.f32"), 1e-4);
  EXPECT_FALSE(load_model(reference_dir() + "/hf_sharded").model->config().tied_classifier);
}

// `mops convert --to hf` of stories260K writes exactly the tensors of the NumPy reference's own
// Hugging Face conversion (q/k rows permuted to rotate-half, the reference's `permute`), which
// its independent rotate-half forward matches; its config.json reads back as the model's.
TEST(ReferenceHuggingFace, ExportIsTheReferencesConversion) {
  const auto dir = fresh_test_dir("hf-export") / "stories";
  const auto run = run_mops("convert --to hf --model " + kStories + " --out " + dir.string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  SafetensorsReader ours((dir / "model.safetensors").string()), theirs(reference_dir() + "/hf/model.safetensors");
  ASSERT_EQ(ours.names(), theirs.names());
  for (const auto& name : ours.names()) {
    EXPECT_TRUE(ours.float_tensor(name).equal(theirs.float_tensor(name))) << name;
  }
  const auto exported = load_model(dir.string()).model->config(), original = load_model(kStories).model->config();
  EXPECT_EQ(exported.to_json(), original.to_json());
  EXPECT_LT(logits_difference(dir.string(), "logits.f32"), 1e-4);
  const auto again = run_mops("convert --to hf --model " + kStories + " --out " + dir.string());
  EXPECT_EQ(again.exit_code, 2) << again.output;
  EXPECT_NE(again.output.find("config.json"), std::string::npos) << again.output;
}

TEST(ReferenceHuggingFace, BF16) { EXPECT_LT(logits_difference(reference_dir() + "/hf_bf16", "logits_bf16.f32"), 1e-4); }

TEST(ReferenceHuggingFace, F16) { EXPECT_LT(logits_difference(reference_dir() + "/hf_f16", "logits_f16.f32"), 1e-4); }

TEST(ReferenceCli, GenerateWithIdsPrintsTheGreedyIds) {
  const auto ref = reference();
  const std::string command = std::string(MOPS_BINARY) + " generate --model " + kStories +
                              " --threads 1 --ids 1 --greedy --print-ids --max-new-tokens " +
                              std::to_string(ref["greedy_ids"].size()) + " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (fgets(buffer, sizeof(buffer), pipe)) output += buffer;
  ASSERT_EQ(pclose(pipe), 0) << command;
  std::string expected;
  for (const auto& id : ref["greedy_ids"]) expected += (expected.empty() ? "" : " ") + std::to_string(id.get<int64_t>());
  EXPECT_EQ(output, expected + "\n");
}

// transformers' LlamaForCausalLM on `mops convert --to hf` exports (tests/reference/
// transformers_peer.py, run by ctest before): the same logits within 1e-4 and the same greedy ids
// as mops on the model it exported, the embedded model and stories260K.
TEST(ReferenceTransformers, LogitsAndGreedyIdsMatchMops) {
  const std::map<std::string, std::string> models = {
      {"skills7", MOPS_SOURCE_DIR "/models/skills7-base.safetensors"}, {"stories", kStories}};
  for (const auto& [name, path] : models) {
    std::ifstream in(reference_dir() + "/transformers/" + name + ".json");
    ASSERT_TRUE(in) << "run tests/reference/transformers_peer.py first (ctest does)";
    const auto ref = nlohmann::json::parse(in);
    auto model = load_model(path).model;
    torch::NoGradGuard no_grad;
    const auto ids = torch::tensor(ref["ids"].get<std::vector<int64_t>>(), torch::kLong).unsqueeze(0);
    const auto ours = model->forward(ids)[0];  // (T, V)
    const auto theirs = read_float32_file(reference_dir() + "/transformers/" + name + ".logits.f32",
                                          ref["logits_shape"].get<std::vector<int64_t>>());
    const double diff = (ours - theirs).abs().max().item<double>();
    std::printf("%s: mops vs transformers %s: max |logit difference| %.3g\n", name.c_str(),
                ref["transformers"].get<std::string>().c_str(), diff);
    EXPECT_LT(diff, 1e-4) << name;
    SamplingOptions options;
    options.greedy = true;
    options.max_new_tokens = int(ref["greedy_ids"].size());
    options.stop_id = -1;
    const auto result = generate(model, ref["greedy_prompt"].get<std::vector<int64_t>>(), options);
    EXPECT_EQ(result.ids, ref["greedy_ids"].get<std::vector<int64_t>>()) << name;
  }
}

}  // namespace
}  // namespace mops
