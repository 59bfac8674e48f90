// One-shot compression of a whole backbone: every linear weight of every decoder block
// (attention wq wk wv wo, feed-forward w1 w2 w3) is pruned, and optionally stored as int8;
// embeddings, norms and the classifier stay as they are (as in SparseGPT).
//
// Sequential, as SparseGPT runs it: block by block in order, and inside a block group by group
// ({wq, wk, wv}, then wo, then {w1, w3}, then w2), each group's calibration inputs are produced
// by everything below it that is already compressed. Then the block's compressed outputs
// become the next block's inputs.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "int8_quantization.h"
#include "llama.h"
#include "sparsegpt.h"
#include "sparsity_pattern.h"

namespace mops {

enum class PruneMethod { kSparseGpt, kWanda, kMagnitude };
PruneMethod parse_prune_method(const std::string& name);  // sparsegpt | wanda | magnitude
const char* prune_method_name(PruneMethod method);

struct CompressionOptions {
  PruneMethod method = PruneMethod::kSparseGpt;
  SparsityPattern pattern;
  bool int8 = false;       // store the compressed weights as int8 + per-row scale
  SparseGptOptions sparsegpt;
  int micro_batch = 8;     // calibration sequences per forward pass
};

struct MatrixReport {
  int layer = 0;
  std::string name;  // "attention.wq", ...
  int64_t rows = 0, cols = 0, zeros = 0;
  double relative_error = 0;  // ||W X - W' X|| / ||W X|| on the calibration inputs
  double seconds = 0;
};

struct CompressionResult {
  std::vector<MatrixReport> matrices;
  std::map<std::string, Int8Weight> int8_weights;  // parameter name -> storage, with --int8
  double seconds = 0;
  int64_t zeros() const;
  int64_t weights() const;
};

// The names of the compressed parameters ("layers.3.attention.wq.weight", ...), in order.
std::vector<std::string> compressible_parameters(const ModelConfig& config);

// Compresses `model` in place. calibration: (N, T) int64 token windows.
CompressionResult compress_model(Llama& model, const torch::Tensor& calibration, const CompressionOptions& options,
                                 std::ostream& progress_out);

std::string format_matrix_table(const CompressionResult& result);
// Options and per-matrix figures, for the checkpoint's metadata.
nlohmann::json compression_record(const CompressionOptions& options, const CompressionResult& result);

}  // namespace mops
