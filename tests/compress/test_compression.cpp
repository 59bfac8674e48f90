// Compression of single weight matrices: exact sparsity and N:M patterns for every method,
// SparseGPT against a hand-calculated optimal-brain-surgeon update and against magnitude
// pruning on correlated inputs, and int8 rounding within half a step.
#include <gtest/gtest.h>

#include <cmath>

#include "baseline_pruning.h"
#include "calibration_data.h"
#include "input_statistics.h"
#include "int8_quantization.h"
#include "sparsegpt.h"
#include "test_support.h"

namespace mops {
namespace {

torch::Tensor random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn({rows, cols}, gen);
}

// Inputs (N, K) whose columns are strongly correlated (a random mix of K/4 sources) and
// of uneven scale, like a transformer's activations.
InputStatistics correlated_inputs(int64_t K, uint64_t seed) {
  auto sources = random_matrix(2048, K / 4, seed);                                         // (N, K/4)
  auto mix = random_matrix(K / 4, K, seed + 1);                                            // (K/4, K)
  auto scale = torch::linspace(0.2, 3.0, K);                                               // (K)
  auto x = (sources.mm(mix) + 0.1 * random_matrix(2048, K, seed + 2)) * scale;             // (N, K)
  InputStatistics statistics(K);
  statistics.add(x);
  return statistics;
}

// Every method's result for one pattern.
// SparseGPT with blocks of `block_size` columns.
std::vector<std::pair<std::string, torch::Tensor>> prune_all(const torch::Tensor& w, const InputStatistics& stats,
                                                             const SparsityPattern& pattern, int block_size = 32) {
  SparseGptOptions options;
  options.block_size = block_size;
  return {{"sparsegpt", sparsegpt_prune(w, stats.gram(), pattern, options)},
          {"wanda", wanda_prune(w, stats.column_norms(), pattern)},
          {"magnitude", magnitude_prune(w, pattern)}};
}

TEST(Sparsity, RemovalCountsAddUpExactly) {
  const auto counts = removal_counts(0.75, {10, 10, 10, 3});
  int64_t total = 0;
  for (auto c : counts) total += c;
  EXPECT_EQ(total, std::llround(0.75 * 33));
  EXPECT_EQ(counts[0], 8);  // round(7.5) = 8
  EXPECT_EQ(counts[1], 7);  // round(15) - 8
}

TEST(Sparsity, UnstructuredSparsityIsExactToTheWeight) {
  const auto w = random_matrix(40, 96, 1);  // 3840 weights, 96 not a multiple of the block size
  const auto stats = correlated_inputs(96, 2);
  for (double s : {0.1, 0.5, 0.75, 0.85, 0.9, 0.333}) {
    for (const auto& [method, pruned] : prune_all(w, stats, unstructured_pattern(s))) {
      EXPECT_EQ((pruned == 0).sum().item<int64_t>(), std::llround(s * 3840)) << method << " at " << s;
    }
  }
}

TEST(Sparsity, EveryGroupOfMHasExactlyNZeros) {
  const auto w = random_matrix(24, 96, 3);
  const auto stats = correlated_inputs(96, 4);
  for (const char* nm : {"2:4", "4:8", "3:4", "7:8", "1:2"}) {
    const auto pattern = parse_nm_pattern(nm);
    for (const auto& [method, pruned] : prune_all(w, stats, pattern)) {
      auto zeros_per_group = (pruned == 0).reshape({24, 96 / pattern.m, pattern.m}).sum(2);  // (R, K/M)
      EXPECT_TRUE((zeros_per_group == pattern.n).all().item<bool>()) << method << " " << nm;
    }
  }
}

TEST(Sparsity, ZeroSparsityLeavesWeightsBitIdentical) {
  const auto w = random_matrix(16, 64, 5);
  const auto stats = correlated_inputs(64, 6);
  for (const auto& [method, pruned] : prune_all(w, stats, unstructured_pattern(0))) {
    EXPECT_TRUE(pruned.equal(w)) << method;
  }
}

TEST(SparseGpt, ReconstructsBetterThanMagnitudeOnCorrelatedInputs) {
  const auto w = random_matrix(64, 96, 7);
  const auto stats = correlated_inputs(96, 8);
  for (const char* setting : {"0.5", "0.75", "0.9", "2:4"}) {
    const std::string text = setting;
    const auto pattern = text.find(':') != std::string::npos ? parse_nm_pattern(text) : unstructured_pattern(std::stod(text));
    const auto results = prune_all(w, stats, pattern, SparseGptOptions{}.block_size);  // one block of 96
    const double sparsegpt = relative_reconstruction_error(w, results[0].second, stats.gram());
    const double wanda = relative_reconstruction_error(w, results[1].second, stats.gram());
    const double magnitude = relative_reconstruction_error(w, results[2].second, stats.gram());
    std::printf("%-5s relative error: sparsegpt %.4f  wanda %.4f  magnitude %.4f\n", setting, sparsegpt, wanda, magnitude);
    const double margin = text == "0.9" ? 1.0 : 0.8;  // clearly better below 90 %
    EXPECT_LT(sparsegpt, margin * magnitude) << setting;
    EXPECT_LT(sparsegpt, wanda) << setting;
  }
}

// One OBS step by hand: block [[1, 2], [3, 4]], U = [[2, 1], [0, 1]], column 0 fixed to 0:
// err = w0 / U00 = [0.5, 1.5]; column 1 -= err * U01 = [2 - 0.5, 4 - 1.5] = [1.5, 2.5].
TEST(SparseGpt, ObsStepMatchesHandCalculation) {
  auto block = torch::tensor({{1.0f, 2.0f}, {3.0f, 4.0f}});
  const auto factor = torch::tensor({{2.0f, 1.0f}, {0.0f, 1.0f}});
  const auto err = obs_fix_column(block, factor, 0, torch::zeros({2}));
  EXPECT_TRUE(err.allclose(torch::tensor({0.5f, 1.5f})));
  EXPECT_TRUE(block.allclose(torch::tensor({{0.0f, 1.5f}, {0.0f, 2.5f}}))) << block;
}

// Removing one weight of w = [0.1, 2, -1] with H = 2 G = [[4, 2, 0], [2, 4, 2], [0, 2, 4]]:
// det H = 32, H^-1 = [[12, -8, 4], [-8, 16, -8], [4, -8, 12]] / 32. The smallest
// w_j^2 / [H^-1]_jj is column 0 (0.0267), and OBS moves the others by -w0 [H^-1]_0j / [H^-1]_00:
// w1 = 2 - (0.1 / 0.375)(-0.25) = 2.0666667, w2 = -1 - (0.1 / 0.375)(0.125) = -1.0333333.
TEST(SparseGpt, SingleRemovalIsTheOptimalBrainSurgeonUpdate) {
  const auto w = torch::tensor({{0.1f, 2.0f, -1.0f}});
  const auto gram = torch::tensor({{2.0, 1.0, 0.0}, {1.0, 2.0, 1.0}, {0.0, 1.0, 2.0}}, torch::kFloat64);
  SparseGptOptions options;
  options.dampening = 0;
  const auto pruned = sparsegpt_prune(w, gram, unstructured_pattern(1.0 / 3.0), options);
  const auto expected = torch::tensor({{0.0f, 2.0666667f, -1.0333333f}});
  std::printf("pruned %s, max difference from hand calculation %.2e\n",
              torch::str(pruned.view(-1)).c_str(), (pruned - expected).abs().max().item<float>());
  EXPECT_TRUE(pruned.allclose(expected, 0, 1e-6));
}

TEST(SparseGpt, DeadInputsAreRemovedFirst) {
  auto x = random_matrix(256, 8, 9);
  x.select(1, 3).zero_();  // input 3 is always zero
  InputStatistics stats(8);
  stats.add(x);
  const auto w = random_matrix(4, 8, 10) + 5.0;  // every weight large
  const auto pruned = sparsegpt_prune(w, stats.gram(), unstructured_pattern(0.125), SparseGptOptions{});
  EXPECT_TRUE((pruned.select(1, 3) == 0).all().item<bool>());
  EXPECT_EQ((pruned == 0).sum().item<int64_t>(), 4);
}

TEST(Int8, RoundingIsWithinHalfAStepPerWeight) {
  auto w = random_matrix(32, 80, 11);
  w[5].zero_();  // an all-zero row gets scale 1 and stays zero
  const auto q = quantize_int8(w);
  EXPECT_EQ(q.values.scalar_type(), torch::kInt8);
  const auto error = (q.dequantize() - w).abs();                          // (R, K)
  const auto half_step = q.scales.unsqueeze(1) / 2 * (1 + 1e-6);         // (R, 1)
  std::printf("largest error / step: %.4f\n", (error / q.scales.unsqueeze(1)).max().item<float>());
  EXPECT_TRUE((error <= half_step).all().item<bool>());
  EXPECT_EQ(q.values.abs().amax(1)[0].item<int>(), 127);  // the row maximum maps to 127
  EXPECT_TRUE((q.values[5] == 0).all().item<bool>());
}

// Int8 after SparseGPT keeps the N:M mask and adds little to the reconstruction error.
TEST(Int8, RoundingAfterSparseGptKeepsTheMaskAndAddsLittleError) {
  const auto w = random_matrix(64, 96, 14);
  const auto stats = correlated_inputs(96, 15);
  for (const char* setting : {"0.5", "0.9", "2:4"}) {
    const std::string text = setting;
    const auto pattern = text.find(':') != std::string::npos ? parse_nm_pattern(text) : unstructured_pattern(std::stod(text));
    const auto pruned = sparsegpt_prune(w, stats.gram(), pattern, SparseGptOptions{});
    const auto int8 = quantize_int8(pruned);
    EXPECT_TRUE(((int8.values == 0) | (pruned != 0)).all().item<bool>()) << setting;  // pruned weights stay zero
    const double pruned_error = relative_reconstruction_error(w, pruned, stats.gram());
    const double int8_error = relative_reconstruction_error(w, int8.dequantize(), stats.gram());
    std::printf("%-5s relative error: pruned %.5f, + int8 %.5f\n", setting, pruned_error, int8_error);
    EXPECT_LT(int8_error, pruned_error * 1.02) << setting;
  }
}

TEST(Compression, BadSettingsNameTheOptionAndTheRange) {
  EXPECT_NE(error_of([] { unstructured_pattern(1.0); }).find("--sparsity 1 is outside [0, 1)"), std::string::npos);
  EXPECT_NE(error_of([] { unstructured_pattern(-0.1); }).find("--sparsity"), std::string::npos);
  EXPECT_NE(error_of([] { parse_nm_pattern("4:4"); }).find("0 < N < M"), std::string::npos);
  EXPECT_NE(error_of([] { parse_nm_pattern("2-4"); }).find("not of the form N:M"), std::string::npos);
  EXPECT_NE(error_of([] { parse_nm_pattern("2:4x"); }).find("not of the form N:M"), std::string::npos);
  EXPECT_NE(error_of([] { check_pattern_fits(parse_nm_pattern("2:3"), 128, "layers.0.attention.wq.weight"); })
                .find("does not divide the input width 128 of layers.0.attention.wq.weight"),
            std::string::npos);
}

TEST(Compression, CalibrationWindowsAreSeededDisjointAndChecked) {
  std::vector<TokenizedExample> train(50);
  for (size_t i = 0; i < train.size(); ++i) train[i].ids = {1, int64_t(10 + i), int64_t(100 + i), 2};  // 200 tokens
  const auto a = calibration_windows(train, 4, 16, 7), b = calibration_windows(train, 4, 16, 7);
  EXPECT_TRUE(a.equal(b));
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(std::get<0>(torch::_unique(a.select(1, 1))).numel(), 4);  // four different windows
  EXPECT_NE(error_of([&] { calibration_windows({}, 4, 16, 7); }).find("calibration set is empty"), std::string::npos);
  EXPECT_NE(error_of([&] { calibration_windows(train, 13, 16, 7); }).find("too small"), std::string::npos);
}

}  // namespace
}  // namespace mops
