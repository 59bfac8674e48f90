// Checkpoint loading and saving: the project's own format round trips bit for bit; Hugging
// Face directories and llama2.c exports written here load to the model they came from; each
// kind of broken checkpoint gives a mops::Error naming the file and the problem.
#include "build_paths.h"
#include "checkpoint.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "errors.h"
#include "hf_checkpoint.h"
#include "safetensors.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace mops {
namespace {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

fs::path test_dir() { return fresh_test_dir("checkpoint"); }

// GQA (4 query heads, 2 key/value heads, head dim 8), so q and k are permuted differently.
ModelConfig tiny_config(bool tied) {
  ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 50;
  c.max_seq_len = 64;
  c.rope_theta = 5000.0f;
  c.tied_classifier = tied;
  return c;
}

// Random weights everywhere, the norms included, so that any two tensors swapped or left at
// their defaults change the logits far above rounding.
Llama tiny_model(bool tied, uint64_t seed = 1) {
  Llama model(tiny_config(tied));
  model->init_weights(seed);
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& p : model->parameters()) {
    if (p.dim() == 2) p.mul_(5.0);
    else p.copy_(1.0 + 0.2 * torch::randn(p.sizes(), gen));
  }
  model->eval();
  return model;
}

torch::Tensor logits(Llama& model) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(7);
  auto tokens = torch::randint(0, model->config().vocab_size, {2, 11}, gen, torch::kLong);
  return model->forward(tokens);  // (B, T, V)
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

void expect_same_parameters(Llama& expected, Llama& actual) {
  auto want = expected->named_parameters(), got = actual->named_parameters();
  ASSERT_EQ(want.keys(), got.keys());
  for (const auto& item : want) {
    EXPECT_TRUE(torch::equal(item.value(), got[item.key()])) << item.key() << " differs";
  }
}

::testing::AssertionResult contains(const std::string& message, const std::string& part) {
  if (message.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << part << "' is not in the message: " << message;
}

// The message of the mops::Error that `action` throws; a failure when it throws none.
template <class Action>
std::string error_message(Action action) {
  try {
    action();
  } catch (const Error& e) {
    std::printf("mops::Error: %s\n", e.what());
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw an exception that is not a mops::Error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "threw nothing";
  return "";
}

std::string load_error(const fs::path& path) {
  return error_message([&] { load_model(path.string()); });
}

// ---------------------------------------------------------------- Hugging Face writer

// Rows of a q/k projection from interleaved pairs to rotate-half, as Hugging Face's
// convert_llama_weights_to_hf.py does: within each head, even rows first, then odd rows.
torch::Tensor permute_to_rotate_half(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1), D = rows / heads;
  return w.view({heads, D / 2, 2, cols}).transpose(1, 2).reshape({rows, cols});
}

json hf_config(const ModelConfig& c) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_act", "silu"},
          {"hidden_size", c.dim},
          {"intermediate_size", c.hidden_dim},
          {"num_hidden_layers", c.n_layers},
          {"num_attention_heads", c.n_heads},
          {"num_key_value_heads", c.n_kv_heads},
          {"vocab_size", c.vocab_size},
          {"max_position_embeddings", c.max_seq_len},
          {"rms_norm_eps", c.norm_eps},
          {"rope_theta", c.rope_theta},
          {"tie_word_embeddings", c.tied_classifier}};
}

// The model's parameters under Hugging Face names and layouts, in `dtype`.
NamedTensors hf_tensors(Llama& model, torch::ScalarType dtype) {
  const ModelConfig& c = model->config();
  auto ours = model->named_parameters();
  NamedTensors out;
  auto add = [&](const std::string& name, const torch::Tensor& t) { out.emplace_back(name, t.detach().to(dtype)); };
  add("model.embed_tokens.weight", ours["tok_embeddings.weight"]);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string hf = "model.layers." + std::to_string(l) + ".", p = "layers." + std::to_string(l) + ".";
    add(hf + "self_attn.q_proj.weight", permute_to_rotate_half(ours[p + "attention.wq.weight"], c.n_heads));
    add(hf + "self_attn.k_proj.weight", permute_to_rotate_half(ours[p + "attention.wk.weight"], c.n_kv_heads));
    add(hf + "self_attn.v_proj.weight", ours[p + "attention.wv.weight"]);
    add(hf + "self_attn.o_proj.weight", ours[p + "attention.wo.weight"]);
    add(hf + "mlp.gate_proj.weight", ours[p + "feed_forward.w1.weight"]);
    add(hf + "mlp.up_proj.weight", ours[p + "feed_forward.w3.weight"]);
    add(hf + "mlp.down_proj.weight", ours[p + "feed_forward.w2.weight"]);
    add(hf + "input_layernorm.weight", ours[p + "attention_norm.weight"]);
    add(hf + "post_attention_layernorm.weight", ours[p + "ffn_norm.weight"]);
  }
  add("model.norm.weight", ours["norm.weight"]);
  if (!c.tied_classifier) add("lm_head.weight", ours["output.weight"]);
  return out;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

void write_hf_dir(const fs::path& dir, const json& config, const NamedTensors& tensors) {
  write_text(dir / "config.json", config.dump(2));
  write_safetensors((dir / "model.safetensors").string(), tensors);
}

// A valid single-file F32 Hugging Face directory of a tiny untied model.
fs::path valid_hf_dir() {
  auto model = tiny_model(false);
  const fs::path dir = test_dir();
  write_hf_dir(dir, hf_config(model->config()), hf_tensors(model, torch::kFloat32));
  return dir;
}

torch::Tensor& tensor_named(NamedTensors& tensors, const std::string& name) {
  auto it = std::find_if(tensors.begin(), tensors.end(), [&](const auto& item) { return item.first == name; });
  if (it == tensors.end()) throw std::logic_error("test bug: no tensor " + name);
  return it->second;
}

// ---------------------------------------------------------------- llama2.c writer

// llama2.c's legacy v0 layout: 7 int32 header fields (vocab negative when untied), then the
// weights of each kind stacked over layers, the unused RoPE tables, and the classifier.
void write_llama2c(const fs::path& path, Llama& model) {
  const ModelConfig& c = model->config();
  auto p = model->named_parameters();
  std::ofstream out(path, std::ios::binary);
  const int32_t header[7] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                             c.tied_classifier ? c.vocab_size : -c.vocab_size, c.max_seq_len};
  out.write(reinterpret_cast<const char*>(header), sizeof(header));
  auto write = [&](const torch::Tensor& t) {
    auto data = t.detach().to(torch::kFloat32).contiguous();
    out.write(reinterpret_cast<const char*>(data.data_ptr<float>()), data.numel() * 4);
  };
  auto per_layer = [&](const std::string& suffix) {
    for (int l = 0; l < c.n_layers; ++l) write(p["layers." + std::to_string(l) + "." + suffix]);
  };
  write(p["tok_embeddings.weight"]);
  per_layer("attention_norm.weight");
  for (const char* w : {"wq", "wk", "wv", "wo"}) per_layer(std::string("attention.") + w + ".weight");
  per_layer("ffn_norm.weight");
  for (const char* w : {"w1", "w2", "w3"}) per_layer(std::string("feed_forward.") + w + ".weight");
  write(p["norm.weight"]);
  write(torch::full({c.max_seq_len, c.head_dim()}, 7.0f));  // freq_cis real and imaginary halves
  if (!c.tied_classifier) write(p["output.weight"]);
  ASSERT_TRUE(out.good()) << path;
}

const std::string kStories = MOPS_SHARED_DIR "/models/stories260K.bin";

// ---------------------------------------------------------------- own format

// save_model + load_model reproduce parameters, config, metadata and logits exactly, for a
// tied and an untied GQA model.
TEST(CheckpointOwnFormat, RoundTripIsBitExact) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    auto model = tiny_model(tied, tied ? 2 : 3);
    const std::string path = (test_dir() / "model.safetensors").string();
    save_model(model, path, {{"note", "hello, world"}, {"step", "42"}});
    LoadedModel loaded = load_model(path);
    EXPECT_EQ(loaded.format, CheckpointFormat::kMops);
    EXPECT_EQ(loaded.model->config().to_json(), model->config().to_json());
    EXPECT_EQ(loaded.model->config().tied_classifier, tied);
    expect_same_parameters(model, loaded.model);
    EXPECT_EQ(loaded.metadata["note"], "hello, world");
    EXPECT_EQ(loaded.metadata["step"], "42");
    EXPECT_TRUE(torch::equal(logits(loaded.model), logits(model)));
  }
}

// ---------------------------------------------------------------- Hugging Face

// The q/k permutation: unpermute_rotate_half undoes Hugging Face's, and sends rotate-half row
// j of a head to interleaved row 2j (first half) or 2(j - D/2) + 1 (second half).
TEST(CheckpointHuggingFace, UnpermuteInvertsTheConversionScriptsPermutation) {
  const int64_t heads = 3, D = 8, C = 5;
  auto w = torch::randn({heads * D, C});
  auto hf = permute_to_rotate_half(w, heads);
  auto ours = unpermute_rotate_half(hf, heads);
  EXPECT_FALSE(torch::equal(hf, w));
  EXPECT_TRUE(torch::equal(ours, w));
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < D; ++j) {
      const int64_t row = h * D + (j < D / 2 ? 2 * j : 2 * (j - D / 2) + 1);
      EXPECT_TRUE(torch::equal(ours[row], hf[h * D + j])) << "head " << h << " rotate-half row " << j;
    }
}

// A Hugging Face directory (config.json + model.safetensors, q/k in rotate-half layout) loads
// to the model it was written from: same parameters, same logits; tied and untied.
TEST(CheckpointHuggingFace, F32DirectoryLoadsTheOriginalModel) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    auto model = tiny_model(tied, tied ? 4 : 5);
    const fs::path dir = test_dir();
    write_hf_dir(dir, hf_config(model->config()), hf_tensors(model, torch::kFloat32));
    LoadedModel loaded = load_model(dir.string());
    EXPECT_EQ(loaded.format, CheckpointFormat::kHuggingFace);
    EXPECT_EQ(loaded.model->config().to_json(), model->config().to_json());
    expect_same_parameters(model, loaded.model);
    const double diff = max_diff(logits(loaded.model), logits(model));
    std::printf("HF F32 (%s) vs original logits: max |diff| = %.3g\n", tied ? "tied" : "untied", diff);
    EXPECT_LT(diff, 1e-5);
  }
}

// BF16 tensors load as the original model with every weight rounded to bf16.
TEST(CheckpointHuggingFace, BF16DirectoryLoadsTheRoundedModel) {
  auto model = tiny_model(false, 6);
  const fs::path dir = test_dir();
  write_hf_dir(dir, hf_config(model->config()), hf_tensors(model, torch::kBFloat16));
  Llama rounded(model->config());
  {
    torch::NoGradGuard no_grad;
    auto source = model->named_parameters();
    for (auto& item : rounded->named_parameters())
      item.value().copy_(source[item.key()].to(torch::kBFloat16).to(torch::kFloat32));
  }
  LoadedModel loaded = load_model(dir.string());
  const double diff = max_diff(logits(loaded.model), logits(rounded));
  const double rounding = max_diff(logits(rounded), logits(model));
  std::printf("HF BF16 vs bf16-rounded logits: max |diff| = %.3g (rounding itself moves them %.3g)\n", diff,
              rounding);
  EXPECT_LT(diff, 1e-4);
  EXPECT_GT(rounding, 1e-3);  // the file really holds bf16
}

// ---------------------------------------------------------------- llama2.c

// stories260K.bin's header is read as its known config, and converting it to the project's
// format keeps every parameter bit for bit.
TEST(CheckpointLlama2c, Stories260KLoadsAndConvertsBitExactly) {
  LoadedModel original = load_model(kStories);
  EXPECT_EQ(original.format, CheckpointFormat::kLlama2c);
  const ModelConfig& c = original.model->config();
  EXPECT_EQ(c.to_json(), stories260k_config().to_json());
  const std::string path = (test_dir() / "stories260K.safetensors").string();
  save_model(original.model, path);
  LoadedModel converted = load_model(path);
  EXPECT_EQ(converted.format, CheckpointFormat::kMops);
  EXPECT_EQ(converted.model->config().to_json(), c.to_json());
  expect_same_parameters(original.model, converted.model);
}

// An untied GQA model written in the v0 layout here loads back tensor for tensor: the file's
// order of weight kinds and the trailing classifier are read where they are. (v0 has no
// rope_theta: it is llama2.c's 10000.)
TEST(CheckpointLlama2c, UntiedFileLoadsEveryTensorInPlace) {
  auto model = tiny_model(false, 8);
  const fs::path path = test_dir() / "untied.bin";
  write_llama2c(path, model);
  LoadedModel loaded = load_model(path.string());
  ModelConfig expected = model->config();
  expected.rope_theta = 10000.0f;  // v0 files do not store it
  EXPECT_EQ(loaded.model->config().to_json(), expected.to_json());
  expect_same_parameters(model, loaded.model);
}

// Files are recognised by their content, not their name: a llama2.c export without the .bin
// extension and the project's format under a .bin name load as what they are.
TEST(CheckpointFormatDetection, ByContentNotByName) {
  const fs::path llama2c = test_dir() / "stories260K.weights";
  fs::copy_file(kStories, llama2c);
  EXPECT_EQ(load_model(llama2c.string()).format, CheckpointFormat::kLlama2c);
  auto model = tiny_model(true);
  const fs::path own = llama2c.parent_path() / "model.bin";
  save_model(model, own.string());
  LoadedModel loaded = load_model(own.string());
  EXPECT_EQ(loaded.format, CheckpointFormat::kMops);
  expect_same_parameters(model, loaded.model);
}

// A file of neither format, whatever its name, is one error naming it and saying why it is not
// safetensors and why not llama2.c.
TEST(CheckpointFormatDetection, RandomFileSaysWhyEachFormatWasRejected) {
  auto gen = at::detail::createCPUGenerator(3);
  const auto noise = torch::randint(0, 256, {4096}, gen, torch::kByte);  // (4096,)
  const std::string bytes(reinterpret_cast<const char*>(noise.data_ptr<uint8_t>()), 4096);
  for (const char* name : {"random.dat", "random.bin", "random.safetensors"}) {
    const fs::path path = test_dir() / name;
    write_file(path, bytes);
    const std::string message = load_error(path);
    EXPECT_TRUE(contains(message, path.string() + ": not a checkpoint of a known format"));
    EXPECT_TRUE(contains(message, "not safetensors: header length"));
    EXPECT_TRUE(contains(message, "not llama2.c v0: header field dim is"));
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

// Each llama2.c header field is range-checked on its own and named, before any allocation.
TEST(CheckpointErrors, Llama2cHeaderFields) {
  struct Case {
    int field;
    int32_t value;
    std::string phrase;
  };
  const std::vector<Case> cases = {
      {0, -94524843, "header field dim is -94524843, expected 1 to 131072"},
      {0, 1 << 20, "header field dim is 1048576"},
      {1, 0, "header field hidden_dim is 0"},
      {2, 5000, "header field n_layers is 5000, expected 1 to 1024"},
      {3, 0, "header field n_heads is 0"},
      {4, -4, "header field n_kv_heads is -4"},
      {4, 3, "n_kv_heads does not divide n_heads (dim 64, n_heads 8, n_kv_heads 3)"},
      {0, 60, "dim is not divisible by n_heads (dim 60, n_heads 8"},
      {0, 24, "head_dim = dim / n_heads = 3 is odd"},
      {5, 0, "header field vocab_size is 0"},
      {5, INT32_MIN, "header field vocab_size is -2147483648, expected 1 to 4194304 or its negative"},
      {6, 1 << 23, "header field seq_len is 8388608"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.phrase);
    int32_t header[7] = {64, 172, 5, 8, 4, 512, 512};  // stories260K's
    header[c.field] = c.value;
    const fs::path path = test_dir() / "header.bin";
    write_file(path, std::string(reinterpret_cast<const char*>(header), sizeof(header)) + std::string(1000, '\0'));
    const std::string message = load_error(path);
    EXPECT_TRUE(contains(message, path.string()));
    EXPECT_TRUE(contains(message, c.phrase));
  }
}

// ---------------------------------------------------------------- ParameterFiller

// finish() names every parameter never filled (and none that was); fill() rejects unknown
// names and wrong shapes.
TEST(CheckpointParameterFiller, FinishNamesEveryMissingParameter) {
  auto source = tiny_model(true);
  Llama target(source->config());
  ParameterFiller filler(target, "source.file");
  const std::vector<std::string> missing = {"layers.0.ffn_norm.weight", "layers.2.attention.wk.weight",
                                            "norm.weight"};
  for (const auto& item : source->named_parameters()) {
    if (std::find(missing.begin(), missing.end(), item.key()) == missing.end()) filler.fill(item.key(), item.value());
  }
  const std::string message = error_message([&] { filler.finish(); });
  EXPECT_TRUE(contains(message, "source.file"));
  std::set<std::string> words;  // the message split at spaces, trailing commas dropped
  std::istringstream stream(message);
  for (std::string word; stream >> word;) words.insert(word.back() == ',' ? word.substr(0, word.size() - 1) : word);
  for (const auto& item : source->named_parameters()) {
    const bool is_missing = std::find(missing.begin(), missing.end(), item.key()) != missing.end();
    EXPECT_EQ(words.count(item.key()), is_missing ? 1u : 0u) << item.key() << " in: " << message;
  }

  const std::string unknown =
      error_message([&] { filler.fill("layers.9.attention.wq.weight", torch::zeros({32, 32})); });
  EXPECT_TRUE(contains(unknown, "layers.9.attention.wq.weight"));
  const std::string shape = error_message([&] { filler.fill("norm.weight", torch::zeros({31})); });
  EXPECT_TRUE(contains(shape, "[31]"));
  EXPECT_TRUE(contains(shape, "[32]"));
}

// ---------------------------------------------------------------- broken checkpoints
// Each throws a mops::Error whose message names the file and the problem.

// The error names the directory and the Hugging Face name of the absent tensor.
TEST(CheckpointErrors, HuggingFaceMissingTensor) {
  auto model = tiny_model(false);
  const fs::path dir = test_dir();
  auto tensors = hf_tensors(model, torch::kFloat32);
  tensors.erase(std::find_if(tensors.begin(), tensors.end(),
                             [](const auto& item) { return item.first == "model.layers.1.mlp.up_proj.weight"; }));
  write_hf_dir(dir, hf_config(model->config()), tensors);
  const std::string message = load_error(dir);
  EXPECT_TRUE(contains(message, dir.string()));
  EXPECT_TRUE(contains(message, "missing tensor 'model.layers.1.mlp.up_proj.weight'"));
}

// The error names the directory, the tensor as the file calls it, and both shapes.
TEST(CheckpointErrors, HuggingFaceTensorWithWrongShape) {
  auto model = tiny_model(false);
  const fs::path dir = test_dir();
  auto tensors = hf_tensors(model, torch::kFloat32);
  tensor_named(tensors, "model.layers.1.mlp.up_proj.weight") = torch::zeros({49, 32});
  write_hf_dir(dir, hf_config(model->config()), tensors);
  const std::string message = load_error(dir);
  EXPECT_TRUE(contains(message, dir.string()));
  EXPECT_TRUE(contains(message, "'model.layers.1.mlp.up_proj.weight'"));
  EXPECT_TRUE(contains(message, "[49, 32]"));
  EXPECT_TRUE(contains(message, "[48, 32]"));
}

// A q_proj whose row count is not a whole number of head pairs must fail the shape check too,
// not inside the rotate-half permutation.
TEST(CheckpointErrors, HuggingFaceQueryProjectionWithWrongShape) {
  auto model = tiny_model(false);
  const fs::path dir = test_dir();
  auto tensors = hf_tensors(model, torch::kFloat32);
  tensor_named(tensors, "model.layers.0.self_attn.q_proj.weight") = torch::zeros({33, 32});
  write_hf_dir(dir, hf_config(model->config()), tensors);
  const std::string message = load_error(dir);
  EXPECT_TRUE(contains(message, dir.string()));
  EXPECT_TRUE(contains(message, "[33, 32]"));
  EXPECT_TRUE(contains(message, "[32, 32]"));
}

// A required config.json field that is absent is named.
TEST(CheckpointErrors, HuggingFaceConfigLacksAField) {
  const fs::path dir = valid_hf_dir();
  json config = json::parse(std::ifstream(dir / "config.json"));
  config.erase("hidden_size");
  write_text(dir / "config.json", config.dump());
  const std::string message = load_error(dir);
  EXPECT_TRUE(contains(message, (dir / "config.json").string()));
  EXPECT_TRUE(contains(message, "'hidden_size'"));
}

// config.json that does not parse is reported as such, not as a missing field.
TEST(CheckpointErrors, HuggingFaceConfigIsNotJson) {
  const fs::path dir = valid_hf_dir();
  write_text(dir / "config.json", "{\"hidden_size\": 32,");
  const std::string message = load_error(dir);
  EXPECT_TRUE(contains(message, (dir / "config.json").string()));
  EXPECT_TRUE(contains(message, "not valid JSON"));
}

// RoPE scaling would silently change the model; it is refused.
TEST(CheckpointErrors, HuggingFaceRopeScaling) {
  const fs::path dir = valid_hf_dir();
  json config = json::parse(std::ifstream(dir / "config.json"));
  config["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  write_text(dir / "config.json", config.dump());
  const std::string message = load_error(dir);
  EXPECT_TRUE(contains(message, (dir / "config.json").string()));
  EXPECT_TRUE(contains(message, "rope_scaling"));
}

// A directory with config.json but no weights says which files it looked for.
TEST(CheckpointErrors, HuggingFaceDirectoryWithoutWeights) {
  const fs::path dir = valid_hf_dir();
  fs::remove(dir / "model.safetensors");
  const std::string message = load_error(dir);
  EXPECT_TRUE(contains(message, dir.string()));
  EXPECT_TRUE(contains(message, "no model.safetensors or model.safetensors.index.json"));
}

// A shard listed in model.safetensors.index.json but absent is named, with the index that lists it.
TEST(CheckpointErrors, HuggingFaceIndexNamesAMissingShard) {
  const fs::path dir = valid_hf_dir();
  fs::rename(dir / "model.safetensors", dir / "model-00001-of-00002.safetensors");
  json weight_map = json::object();
  for (const auto& name : SafetensorsReader((dir / "model-00001-of-00002.safetensors").string()).names()) {
    weight_map[name] = "model-00001-of-00002.safetensors";
  }
  weight_map["model.norm.weight"] = "model-00002-of-00002.safetensors";
  const json index = {{"metadata", json::object()}, {"weight_map", weight_map}};
  write_text(dir / "model.safetensors.index.json", index.dump());
  const std::string message = load_error(dir);
  EXPECT_TRUE(contains(message, (dir / "model.safetensors.index.json").string()));
  EXPECT_TRUE(contains(message, "'model-00002-of-00002.safetensors'"));
  EXPECT_TRUE(contains(message, "does not exist"));
}

// A tiny untied model in two shards (embeddings and layer 0 | the rest) and the index's
// weight_map for them, not yet written: each test breaks one thing first.
struct Shards {
  fs::path dir;
  NamedTensors first, second;
  json weight_map = json::object();
  void write() const {
    write_text(dir / "config.json", hf_config(tiny_config(false)).dump());
    write_safetensors((dir / "a.safetensors").string(), first);
    write_safetensors((dir / "b.safetensors").string(), second);
    write_text(dir / "model.safetensors.index.json", json{{"weight_map", weight_map}}.dump());
  }
};

Shards sharded_hf_dir() {
  auto model = tiny_model(false);
  Shards shards;
  shards.dir = test_dir();
  for (auto& [name, tensor] : hf_tensors(model, torch::kFloat32)) {
    const bool first = name == "model.embed_tokens.weight" || name.rfind("model.layers.0.", 0) == 0;
    (first ? shards.first : shards.second).emplace_back(name, tensor);
    shards.weight_map[name] = first ? "a.safetensors" : "b.safetensors";
  }
  return shards;
}

TEST(CheckpointHuggingFace, ShardedDirectoryLoads) {
  const Shards shards = sharded_hf_dir();
  shards.write();
  EXPECT_EQ(load_model(shards.dir.string()).format, CheckpointFormat::kHuggingFace);
}

// The index puts a tensor in a shard that does not hold it.
TEST(CheckpointErrors, HuggingFaceIndexNamesTheWrongShard) {
  Shards shards = sharded_hf_dir();
  shards.weight_map["model.norm.weight"] = "a.safetensors";
  shards.write();
  const std::string message = load_error(shards.dir);
  EXPECT_TRUE(contains(message, (shards.dir / "model.safetensors.index.json").string()));
  EXPECT_TRUE(contains(message, "puts tensor 'model.norm.weight' in shard 'a.safetensors', which does not hold it"));
}

// A shard holds a tensor the index does not list, or lists in another shard (a tensor in two shards).
TEST(CheckpointErrors, HuggingFaceShardHoldsATensorTheIndexPutsElsewhere) {
  Shards shards = sharded_hf_dir();
  shards.first.emplace_back("model.norm.weight", torch::ones({32}));
  shards.write();
  std::string message = load_error(shards.dir);
  EXPECT_TRUE(contains(message, (shards.dir / "a.safetensors").string() + ": holds tensor 'model.norm.weight'"));
  EXPECT_TRUE(contains(message, "puts in shard 'b.safetensors'"));

  shards = sharded_hf_dir();
  shards.weight_map.erase("model.layers.0.mlp.up_proj.weight");
  shards.write();
  message = load_error(shards.dir);
  EXPECT_TRUE(contains(message, "holds tensor 'model.layers.0.mlp.up_proj.weight'"));
  EXPECT_TRUE(contains(message, "does not list"));
}

// Shard names are plain file names in the checkpoint's directory; every value is one.
TEST(CheckpointErrors, HuggingFaceIndexShardNames) {
  for (const json& bad : {json("../b.safetensors"), json("sub/b.safetensors"), json(7)}) {
    SCOPED_TRACE(bad.dump());
    Shards shards = sharded_hf_dir();
    shards.weight_map["model.norm.weight"] = bad;
    shards.write();
    const std::string message = load_error(shards.dir);
    EXPECT_TRUE(contains(message, (shards.dir / "model.safetensors.index.json").string()));
    EXPECT_TRUE(contains(message, "weight_map['model.norm.weight'] is "));
    EXPECT_TRUE(contains(message, bad.is_string() ? "not a plain file name" : "expected a shard file name"));
  }
}

// A tensor named twice in the index's JSON (nlohmann::json would keep the last silently).
TEST(CheckpointErrors, HuggingFaceIndexNamesATensorTwice) {
  Shards shards = sharded_hf_dir();
  shards.write();
  std::string text = json{{"weight_map", shards.weight_map}}.dump();
  text.insert(text.find('{', 1) + 1, R"("model.norm.weight":"a.safetensors",)");
  write_text(shards.dir / "model.safetensors.index.json", text);
  const std::string message = load_error(shards.dir);
  EXPECT_TRUE(contains(message, "has key 'model.norm.weight' twice in 'weight_map'"));
}

// Tensors the config does not account for (a bias, a layer beyond num_hidden_layers) are not
// silently ignored.
TEST(CheckpointErrors, HuggingFaceTensorsTheConfigDoesNotHave) {
  const fs::path dir = valid_hf_dir();
  json config = json::parse(std::ifstream(dir / "config.json"));
  config["num_hidden_layers"] = 2;
  write_text(dir / "config.json", config.dump());
  std::string message = load_error(dir);
  EXPECT_TRUE(contains(message, "tensors a Llama of this config.json does not have: model.layers.2."));

  auto model = tiny_model(false);
  auto tensors = hf_tensors(model, torch::kFloat32);
  tensors.emplace_back("model.layers.0.self_attn.q_proj.bias", torch::zeros({32}));
  write_hf_dir(dir, hf_config(model->config()), tensors);
  message = load_error(dir);
  EXPECT_TRUE(contains(message, "does not have: model.layers.0.self_attn.q_proj.bias"));
}

// config.json's sizes are integers in range, not numbers that convert to one.
TEST(CheckpointErrors, HuggingFaceConfigFieldsAreTypeAndRangeChecked) {
  for (const auto& [field, value] : std::vector<std::pair<std::string, json>>{
           {"hidden_size", 32.5}, {"num_hidden_layers", 4294967299}, {"rms_norm_eps", 0}, {"tie_word_embeddings", 1}}) {
    SCOPED_TRACE(field);
    const fs::path dir = valid_hf_dir();
    json config = json::parse(std::ifstream(dir / "config.json"));
    config[field] = value;
    write_text(dir / "config.json", config.dump());
    const std::string message = load_error(dir);
    EXPECT_TRUE(contains(message, (dir / "config.json").string() + ": field '" + field + "' is " + value.dump()));
  }
}

// A .bin 100 bytes short of what its header implies is reported as truncated.
TEST(CheckpointErrors, Llama2cTruncated) {
  const fs::path path = test_dir() / "stories260K_truncated.bin";
  fs::copy_file(kStories, path);
  fs::resize_file(path, fs::file_size(path) - 100);
  const std::string message = load_error(path);
  EXPECT_TRUE(contains(message, path.string()));
  EXPECT_TRUE(contains(message, "truncated"));
}

// A versioned (magic "ak42") llama2.c export is recognised and refused.
TEST(CheckpointErrors, Llama2cVersionedExport) {
  const fs::path path = test_dir() / "v1.bin";
  const int32_t header[8] = {0x616b3432, 1, 64, 172, 5, 8, 4, 512};  // magic, version, config...
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(header), sizeof(header));
  const std::string message = load_error(path);
  EXPECT_TRUE(contains(message, path.string()));
  EXPECT_TRUE(contains(message, "versioned llama2.c export"));
}

// A plain safetensors file (no format=mops metadata) is not taken for a model.
TEST(CheckpointErrors, SafetensorsWithoutProjectMetadata) {
  auto model = tiny_model(true);
  const fs::path path = test_dir() / "plain.safetensors";
  NamedTensors tensors;
  for (const auto& item : model->named_parameters()) tensors.emplace_back(item.key(), item.value().detach());
  write_safetensors(path.string(), tensors);
  const std::string message = load_error(path);
  EXPECT_TRUE(contains(message, path.string()));
  EXPECT_TRUE(contains(message, "not a MoPs model file"));
}

// A missing path is reported before any format is guessed.
TEST(CheckpointErrors, PathDoesNotExist) {
  const fs::path path = test_dir() / "nowhere.safetensors";
  const std::string message = load_error(path);
  EXPECT_TRUE(contains(message, path.string()));
  EXPECT_TRUE(contains(message, "does not exist"));
}

}  // namespace
}  // namespace mops
