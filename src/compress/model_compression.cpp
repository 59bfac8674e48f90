#include "model_compression.h"

#include <chrono>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "baseline_pruning.h"
#include "errors.h"
#include "input_statistics.h"
#include "progress.h"

// Letters: N calibration sequences, T tokens each, C width, R/K rows/columns of a weight.

namespace mops {
namespace {

// Linear layers that read the same input, compressed together.
struct LinearGroup {
  std::vector<std::string> names;
  torch::Tensor LinearInputs::*input;
};

const std::vector<LinearGroup>& linear_groups() {
  static const std::vector<LinearGroup> groups = {
      {{"attention.wq", "attention.wk", "attention.wv"}, &LinearInputs::attention_in},
      {{"attention.wo"}, &LinearInputs::mixed},
      {{"feed_forward.w1", "feed_forward.w3"}, &LinearInputs::ffn_in},
      {{"feed_forward.w2"}, &LinearInputs::hidden},
  };
  return groups;
}

// named_parameters() returns a new dict: find() points into it, so it is kept until the weight's
// handle (which shares the parameter's storage) is copied out.
torch::Tensor block_weight(Block& block, const std::string& name) {
  const auto parameters = block->named_parameters();
  const auto* weight = parameters.find(name + ".weight");
  MOPS_CHECK(weight, "block has no parameter " << name << ".weight");
  return *weight;
}

// Runs layer l over h (N, T, C) in micro-batches; returns its outputs (N, T, C) and feeds
// the group input of every micro-batch to `statistics` when given.
torch::Tensor run_layer(Llama& model, int l, const torch::Tensor& h, int micro_batch, const LinearGroup* group,
                        InputStatistics* statistics) {
  std::vector<torch::Tensor> outputs;
  for (int64_t begin = 0; begin < h.size(0); begin += micro_batch) {
    LinearInputs record;
    outputs.push_back(model->run_layer_recording(h.slice(0, begin, begin + micro_batch), l, group ? &record : nullptr));
    if (group) statistics->add(record.*(group->input));
  }
  return torch::cat(outputs, 0);
}

torch::Tensor compress_matrix(const torch::Tensor& weight, const InputStatistics& statistics,
                              const CompressionOptions& options, Int8Weight* int8) {
  torch::Tensor pruned;
  switch (options.method) {
    case PruneMethod::kSparseGpt:
      pruned = sparsegpt_prune(weight, statistics.gram(), options.pattern, options.sparsegpt);
      break;
    case PruneMethod::kWanda: pruned = wanda_prune(weight, statistics.column_norms(), options.pattern); break;
    case PruneMethod::kMagnitude: pruned = magnitude_prune(weight, options.pattern); break;
  }
  if (!options.int8) return pruned;
  *int8 = quantize_int8(pruned);
  return int8->dequantize();
}

}  // namespace

PruneMethod parse_prune_method(const std::string& name) {
  if (name == "sparsegpt") return PruneMethod::kSparseGpt;
  if (name == "wanda") return PruneMethod::kWanda;
  if (name == "magnitude") return PruneMethod::kMagnitude;
  MOPS_FAIL("--method '" << name << "' is not one of sparsegpt, wanda, magnitude");
}

const char* prune_method_name(PruneMethod method) {
  switch (method) {
    case PruneMethod::kSparseGpt: return "sparsegpt";
    case PruneMethod::kWanda: return "wanda";
    case PruneMethod::kMagnitude: return "magnitude";
  }
  return "?";
}

int64_t CompressionResult::zeros() const {
  int64_t total = 0;
  for (const auto& m : matrices) total += m.zeros;
  return total;
}

int64_t CompressionResult::weights() const {
  int64_t total = 0;
  for (const auto& m : matrices) total += m.rows * m.cols;
  return total;
}

std::vector<std::string> compressible_parameters(const ModelConfig& config) {
  std::vector<std::string> names;
  for (int l = 0; l < config.n_layers; ++l) {
    for (const auto& group : linear_groups()) {
      for (const auto& name : group.names) names.push_back("layers." + std::to_string(l) + "." + name + ".weight");
    }
  }
  return names;
}

CompressionResult compress_model(Llama& model, const torch::Tensor& calibration, const CompressionOptions& options,
                                 std::ostream& progress_out) {
  torch::NoGradGuard no_grad;
  const int L = model->config().n_layers;
  for (const auto& name : compressible_parameters(model->config())) {
    check_pattern_fits(options.pattern, model->named_parameters()[name].size(1), name);
  }
  MOPS_CHECK(options.micro_batch > 0, "micro-batch must be positive");
  CompressionResult result;
  Progress progress("compress", int64_t(L) * int64_t(linear_groups().size()), "groups", progress_out);
  auto h = model->embed(calibration);  // (N, T, C)
  int64_t groups_done = 0;
  for (int l = 0; l < L; ++l) {
    auto block = model->block(l);
    for (const auto& group : linear_groups()) {
      InputStatistics statistics(block_weight(block, group.names[0]).size(1));
      run_layer(model, l, h, options.micro_batch, &group, &statistics);
      for (const auto& name : group.names) {
        const auto started = std::chrono::steady_clock::now();
        auto weight = block_weight(block, name);
        Int8Weight int8;
        auto compressed = compress_matrix(weight, statistics, options, &int8);
        MatrixReport report;
        report.layer = l;
        report.name = name;
        report.rows = weight.size(0);
        report.cols = weight.size(1);
        report.zeros = (compressed == 0).sum().item<int64_t>();
        report.relative_error = relative_reconstruction_error(weight, compressed, statistics.gram());
        weight.copy_(compressed);
        if (options.int8) result.int8_weights["layers." + std::to_string(l) + "." + name + ".weight"] = int8;
        report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        result.matrices.push_back(report);
      }
      progress.update(++groups_done, "layer " + std::to_string(l));
    }
    h = run_layer(model, l, h, options.micro_batch, nullptr, nullptr);
  }
  result.seconds = progress.elapsed_seconds();
  progress.finish();
  return result;
}

std::string format_matrix_table(const CompressionResult& result) {
  std::ostringstream out;
  out << std::left << std::setw(7) << "layer" << std::setw(18) << "matrix" << std::right << std::setw(11) << "shape"
      << std::setw(10) << "zeros" << std::setw(10) << "sparsity" << std::setw(12) << "rel. error" << std::setw(9)
      << "seconds" << "\n";
  for (const auto& m : result.matrices) {
    const std::string shape = std::to_string(m.rows) + "x" + std::to_string(m.cols);
    out << std::left << std::setw(7) << m.layer << std::setw(18) << m.name << std::right << std::setw(11) << shape
        << std::setw(10) << m.zeros << std::setw(9) << std::fixed << std::setprecision(2)
        << 100.0 * double(m.zeros) / double(m.rows * m.cols) << "%" << std::setw(12) << std::setprecision(4)
        << m.relative_error << std::setw(9) << std::setprecision(3) << m.seconds << "\n";
  }
  out << std::left << std::setw(25) << "all" << std::right << std::setw(11) << result.weights() << std::setw(10)
      << result.zeros() << std::setw(9) << std::fixed << std::setprecision(2)
      << 100.0 * double(result.zeros()) / double(std::max<int64_t>(result.weights(), 1)) << "%" << std::setw(21)
      << std::setprecision(3) << result.seconds << "\n";
  return out.str();
}

nlohmann::json compression_record(const CompressionOptions& options, const CompressionResult& result) {
  nlohmann::json record;
  record["method"] = prune_method_name(options.method);
  record["pattern"] = options.pattern.describe();
  record["target_sparsity"] = options.pattern.fraction();
  record["int8"] = options.int8;
  if (options.method == PruneMethod::kSparseGpt) {
    record["block_size"] = options.sparsegpt.block_size;
    record["dampening"] = options.sparsegpt.dampening;
  }
  record["achieved_sparsity"] = double(result.zeros()) / double(std::max<int64_t>(result.weights(), 1));
  record["seconds"] = result.seconds;
  for (const auto& m : result.matrices) {
    record["matrices"].push_back({{"layer", m.layer}, {"name", m.name}, {"rows", m.rows}, {"cols", m.cols},
                                  {"zeros", m.zeros}, {"relative_error", m.relative_error}});
  }
  return record;
}

}  // namespace mops
