// SparseGPT against the independent NumPy implementation (tests/reference/sparsegpt_reference.py,
// float64, run by ctest before this test) on correlated inputs, unstructured and N:M, several blocks.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "build_paths.h"
#include "sparsegpt.h"

namespace mops {
namespace {

std::string reference_dir() { return MOPS_TEST_WORK_DIR "/reference/sparsegpt"; }

torch::Tensor read_f64(const std::string& name, std::vector<int64_t> shape) {
  auto values = torch::empty(shape, torch::kFloat64);
  std::ifstream in(reference_dir() + "/" + name, std::ios::binary);
  in.read(reinterpret_cast<char*>(values.data_ptr<double>()), values.numel() * 8);
  EXPECT_TRUE(in) << name << ": run tests/reference/sparsegpt_reference.py first (ctest does)";
  return values;
}

TEST(ReferenceSparseGpt, MatchesTheNumPyImplementation) {
  std::ifstream in(reference_dir() + "/cases.json");
  ASSERT_TRUE(in) << "run tests/reference/sparsegpt_reference.py first (ctest does)";
  const auto cases = nlohmann::json::parse(in);
  const int64_t R = cases["rows"], K = cases["cols"];
  const auto weight = read_f64("weight.f64", {R, K});
  const auto gram = read_f64("gram.f64", {K, K});
  SparseGptOptions options;
  options.block_size = cases["block_size"];
  options.dampening = cases["dampening"];
  for (const auto& c : cases["cases"]) {
    const std::string name = c["name"];
    SparsityPattern pattern;
    pattern.sparsity = c["sparsity"];
    pattern.n = c["n"];
    pattern.m = c["m"];
    const auto expected = read_f64("pruned_" + name + ".f64", {R, K});
    const auto ours = sparsegpt_prune(weight, gram, pattern, options).to(torch::kFloat64);
    const double difference = (ours - expected).abs().max().item<double>();
    std::printf("%-5s max |ours - numpy| = %.2e (weights up to %.2f)\n", name.c_str(), difference,
                expected.abs().max().item<double>());
    EXPECT_TRUE((ours == 0).equal(expected == 0)) << name << ": different masks";
    EXPECT_LT(difference, 1e-4) << name;  // float32 against float64
  }
}

}  // namespace
}  // namespace mops
