// The torch-free checkpoint validators on their own (the readers' tests cover their errors
// through the files): what they return for valid input.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "build_paths.h"
#include "hf_config.h"
#include "llama2c_header.h"
#include "safetensors.h"
#include "safetensors_layout.h"
#include "test_support.h"

namespace mops {
namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Offsets are relative to the data section, which starts after the length and the header.
TEST(CheckpointValidation, SafetensorsLayoutOfAWrittenFile) {
  const std::string path = (fresh_test_dir("validation") / "w.safetensors").string();
  write_safetensors(path, {{"b", torch::ones({2, 3}, torch::kBFloat16)}, {"a", torch::ones({5}, torch::kLong)}},
                    {{"note", "x"}});
  const std::string bytes = file_bytes(path);
  const SafetensorsLayout layout = parse_safetensors_layout(path, bytes.data(), bytes.size());
  EXPECT_EQ(layout.data_start + 12 + 40, bytes.size());
  EXPECT_EQ(layout.metadata, (std::map<std::string, std::string>{{"note", "x"}}));
  ASSERT_EQ(layout.entries.size(), 2u);
  const SafetensorsEntry& b = layout.entries.at("b");
  EXPECT_EQ(b.dtype, "BF16");
  EXPECT_EQ(b.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(b.begin, 0u);
  EXPECT_EQ(b.end, 12u);
  EXPECT_EQ(layout.entries.at("a").begin, 12u);
  EXPECT_EQ(safetensors_dtype_size("BF16"), 2u);
  EXPECT_EQ(safetensors_dtype_size("I64"), 8u);
  EXPECT_EQ(safetensors_dtype_size("F8_E4M3"), 0u);
}

// stories260K's header read with its exact file size; 4 bytes more is no llama2.c file.
TEST(CheckpointValidation, Llama2cHeaderOfStories260K) {
  const std::string bytes = file_bytes(MOPS_SHARED_DIR "/models/stories260K.bin");
  const ModelConfig c = parse_llama2c_header("stories260K.bin", bytes.data(), bytes.size(), bytes.size());
  EXPECT_EQ(c.to_json(), stories260k_config().to_json());
  EXPECT_NE(error_of([&] { parse_llama2c_header("x", bytes.data(), 28, bytes.size() + 4); }).find("truncated"),
            std::string::npos);
}

// Optional config.json fields take Hugging Face's defaults; null counts as absent.
TEST(CheckpointValidation, HfConfigDefaultsAndIndex) {
  const ModelConfig c = parse_hf_config("config.json", R"({"hidden_size": 32, "intermediate_size": 48,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": null, "vocab_size": 10,
      "max_position_embeddings": 8, "head_dim": 8})");
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.norm_eps, 1e-6f);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_FALSE(c.tied_classifier);
  EXPECT_EQ(parse_hf_index("index.json", R"({"metadata": {"total_size": 4}, "weight_map": {"w": "s.safetensors"}})"),
            (std::map<std::string, std::string>{{"w", "s.safetensors"}}));
}

}  // namespace
}  // namespace mops
