// sparsegpt_bench: seconds SparseGPT (src/compress/sparsegpt.h) takes to prune the seven matrices of one
// Llama block of width d (wq, wk, wv, wo: C x C with G = H/2 key/value heads; w1, w3: F x C;
// w2: C x F, F = Llama's SwiGLU width), on random weights and the Gram matrix of N random
// calibration tokens. The FLOPs grow as K^3 (the inverse Hessian's Cholesky factor) plus
// R K^2 (the updates), 8x per doubling of d; small matrices take less than that, because the
// column-by-column loop costs per column, not per FLOP. A benchmark: it prints, and never
// passes or fails on time.
//   sparsegpt_bench [--dims 128,256,512,1024] [--tokens 2048] [--pattern 0.5|2:4] [--reps 3]
//                   [--threads 0] [--thread-split blas|torch]
//
// Letters: R output rows, K input columns, C width, F SwiGLU width, N calibration tokens.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "allocator_settings.h"
#include "errors.h"
#include "model_config.h"
#include "sparsegpt.h"
#include "threads.h"

namespace mops {
namespace {

struct Options {
  std::vector<int> dims = {128, 256, 512, 1024};
  int tokens = 2048;
  std::string pattern = "0.5";
  int reps = 3;
  int threads = 0;
  ThreadSplit split = ThreadSplit::kBlas;
};

const char* kUsage =
    "usage: sparsegpt_bench [--dims 128,256,512,1024] [--tokens 2048] [--pattern 0.5|2:4] [--reps 3]\n"
    "                       [--threads 0] [--thread-split blas|torch]\n";

std::vector<int> parse_dims(const std::string& text) {
  std::vector<int> dims;
  std::stringstream in(text);
  std::string word;
  while (std::getline(in, word, ',')) {
    dims.push_back(std::stoi(word));
    MOPS_CHECK(dims.back() >= 16 && dims.back() % 16 == 0, "--dims: " << word << " is not a multiple of 16 >= 16");
  }
  return dims;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    MOPS_CHECK(i + 1 < argc, name << " needs a value\n" << kUsage);
    const std::string value = argv[++i];
    if (name == "--dims") o.dims = parse_dims(value);
    else if (name == "--tokens") o.tokens = std::stoi(value);
    else if (name == "--pattern") o.pattern = value;
    else if (name == "--reps") o.reps = std::stoi(value);
    else if (name == "--threads") o.threads = std::stoi(value);
    else if (name == "--thread-split") o.split = parse_thread_split(value);
    else MOPS_FAIL("unknown option " << name << "\n" << kUsage);
  }
  MOPS_CHECK(o.tokens > 0 && o.reps > 0, "--tokens and --reps must be positive");
  return o;
}

SparsityPattern pattern_of(const std::string& text) {
  return text.find(':') != std::string::npos ? parse_nm_pattern(text) : unstructured_pattern(std::stod(text));
}

// Seconds to prune every matrix of one block of width C: (R, K) shapes with their input's Gram.
double block_seconds(int C, int tokens, const SparsityPattern& pattern, uint64_t seed) {
  const int F = llama_hidden_dim(C, 32);
  const std::vector<std::pair<int, int>> shapes = {{C, C}, {C / 2, C}, {C / 2, C}, {C, C}, {F, C}, {F, C}, {C, F}};
  auto gen = at::detail::createCPUGenerator(seed);
  auto x_c = torch::randn({C, tokens}, gen), x_f = torch::randn({F, tokens}, gen);  // (K, N)
  const auto gram_c = torch::mm(x_c, x_c.t()), gram_f = torch::mm(x_f, x_f.t());    // (K, K)
  double seconds = 0;
  for (const auto& [rows, columns] : shapes) {
    const auto weight = torch::randn({rows, columns}, gen) * 0.02;  // (R, K)
    const auto& gram = columns == C ? gram_c : gram_f;
    const auto start = std::chrono::steady_clock::now();
    sparsegpt_prune(weight, gram, pattern, SparseGptOptions{});
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return seconds;
}

void run(const Options& o) {
  const auto threads = apply_thread_settings(o.threads, o.split);
  const auto pattern = pattern_of(o.pattern);
  std::printf("# sparsegpt_bench: one block's 7 matrices, %s, %d calibration tokens, median of %d; %s\n",
              pattern.describe().c_str(), o.tokens, o.reps, describe(threads).c_str());
  std::printf("| d | F | seconds per block | x previous d |\n|---|---|---|---|\n");
  double previous = 0;
  for (int C : o.dims) {
    std::vector<double> seconds;
    for (int r = 0; r < o.reps; ++r) seconds.push_back(block_seconds(C, o.tokens, pattern, uint64_t(r)));
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    std::printf("| %d | %d | %.3f | ", C, llama_hidden_dim(C, 32), median);
    if (previous > 0) std::printf("%.1f |\n", median / previous);
    else std::printf("- |\n");
    std::fflush(stdout);
    previous = median;
  }
}

}  // namespace
}  // namespace mops

int main(int argc, char** argv) {
  mops::keep_freed_memory_for_reuse();
  try {
    mops::run(mops::parse_options(argc, argv));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparsegpt_bench: %s\n", e.what());
    return 1;
  }
}
