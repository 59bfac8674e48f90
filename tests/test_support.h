// Small helpers shared by the test files.
#pragma once
#include <torch/torch.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <sys/wait.h>

#include "build_paths.h"
#include "errors.h"
#include "model_config.h"

namespace mops {

// A fresh, empty directory for the running test: MOPS_TEST_WORK_DIR/AREA/Suite.Test.
inline std::filesystem::path fresh_test_dir(const std::string& area) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const auto dir = std::filesystem::path(MOPS_TEST_WORK_DIR) / area /
                   (std::string(info->test_suite_name()) + "." + info->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Writes `content` to `path` and returns the path.
inline std::string write_file(const std::filesystem::path& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
  return path.string();
}

// The message of the mops::Error that BODY throws, or "" when it throws none.
// In a test that needs a CUDA GPU (ctest label gpu): skips it, saying why, where none is visible.
#define MOPS_NEEDS_GPU()                                                                          \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA GPU is visible to this process " \
                                                    "(CI has none; scripts/gpu_check.sh runs these on one)"

inline std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

// The comparison table's column for a peer method's --method name (written out here, not taken
// from src/prompts/comparison_table.cpp, so the tests check the table's text).
inline std::string peer_column_label(const std::string& method) {
  const std::map<std::string, std::string> labels = {{"lora", "LoRA"}, {"ia3", "IA3"}, {"prefix", "prefix"}, {"mpt", "MPT"}};
  return labels.at(method);
}

// A raw little-endian float32 file (what the Python references write) as a tensor of `shape`;
// throws mops::Error naming the file when it is missing or shorter.
inline torch::Tensor read_float32_file(const std::string& path, const std::vector<int64_t>& shape) {
  auto values = torch::empty(shape, torch::kFloat32);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(values.data_ptr<float>()), std::streamsize(values.numel() * 4));
  MOPS_CHECK(in, path << ": missing or shorter than " << values.numel() << " float32 values (its Python reference "
                      "writes it; ctest runs that first)");
  return values;
}

// The header of ../shared/models/stories260K.bin (llama2.c's stories260K), as a model config.
inline ModelConfig stories260k_config() {
  ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_layers = 5;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.vocab_size = 512;
  c.max_seq_len = 512;
  c.tied_classifier = true;
  return c;
}

// The `mops` binary's exit code and its stdout + stderr.
struct Run {
  int exit_code;
  std::string output;
};

// A shell command's exit code and its output (stdout; add 2>&1 for stderr).
inline Run run_command(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  char buffer[4096];
  while (pipe && fgets(buffer, sizeof(buffer), pipe)) output += buffer;
  const int status = pipe ? pclose(pipe) : -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

inline Run run_mops(const std::string& args) { return run_command(std::string(MOPS_BINARY) + " " + args + " 2>&1"); }

// tests/reference/check_results_file.py on PATH: the results schema as plain h5py reads it.
inline Run h5py_check(const std::string& path) {
  return run_command(MOPS_PYTHON " " MOPS_SOURCE_DIR "/tests/reference/check_results_file.py '" + path + "' 2>&1");
}

}  // namespace mops
