// `mops prune`: one-shot compression of a backbone (SparseGPT, Wanda or magnitude pruning,
// unstructured or N:M, optionally int8), with a per-matrix table and test perplexity before
// and after.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "calibration_data.h"
#include "checkpoint.h"
#include "command_start.h"
#include "commands.h"
#include "dataset_options.h"
#include "errors.h"
#include "evaluation.h"
#include "model_compression.h"
#include "output_files.h"

namespace mops {
namespace {

void add_prune_options(CommandLine& cl) {
  cl.options().add_options()
      ("model", po::value<std::string>()->required()->value_name("PATH"), "dense checkpoint to compress")
      ("out", po::value<std::string>()->required()->value_name("FILE"),
       "compressed checkpoint to write (.safetensors); never replaced without --overwrite")
      ("tokenizer", po::value<std::string>()->required()->value_name("FILE"), "SentencePiece .model of the model");
  cl.add_choice("method", "sparsegpt", {"sparsegpt", "wanda", "magnitude"}, "the pruning method");
  cl.add_number<double>("sparsity", std::nullopt, Range::half_open(0, 1),
                        "unstructured: fraction of weights removed", "S");
  cl.options().add_options()
      ("nm", po::value<std::string>()->value_name("N:M"), "semi-structured: N removed of every M input weights "
                                                          "(2:4 and 4:8 = 50 %, 3:4 = 75 %, 7:8 = 87.5 %)")
      ("int8", po::bool_switch(), "also quantise the compressed weights to int8 (symmetric, per output row)")
      ("calib-source", po::value<std::vector<std::string>>()->multitoken()->value_name("SOURCE..."),
       "calibration data, training split only (default: the --data sources)");
  cl.add_number<int>("calib-samples", 128, Range::closed(1, 1 << 20), "calibration sequences");
  cl.add_number<int>("calib-seqlen", 0, Range::closed(0, 1 << 24),
                     "tokens per calibration sequence: 0 (the model's max_seq_len) or 2 to max_seq_len");
  cl.add_number<int>("block-size", 128, Range::closed(1, 1 << 20), "SparseGPT: columns per block");
  cl.add_number<double>("dampening", 0.01, Range::closed(0, 1e6),
                        "SparseGPT: Hessian dampening, fraction of its mean diagonal");
  cl.add_number<int>("micro-batch", 8, Range::closed(1, 1 << 20), "calibration sequences per forward pass");
  cl.add_number<int>("batch-size", 16, Range::closed(1, 4096),
                     "test examples per forward pass when measuring perplexity");
  add_dataset_options(cl, true);
  cl.add_threads_option();
  cl.add_device_options(false);  // Hessians and weight updates in float32/float64
  cl.add_seed_option();
  cl.add_overwrite_option();
}

CompressionOptions compression_options(const CommandLine& cl) {
  cl.require(cl.has("sparsity") != cl.has("nm"),
             "give exactly one of --sparsity S (unstructured) and --nm N:M (semi-structured)");
  CompressionOptions options;
  options.method = parse_prune_method(cl.get<std::string>("method"));
  options.pattern = as_usage_error([&] {
    return cl.has("nm") ? parse_nm_pattern(cl.get<std::string>("nm")) : unstructured_pattern(cl.get<double>("sparsity"));
  });
  options.int8 = cl.get<bool>("int8");
  options.sparsegpt.block_size = cl.get<int>("block-size");
  options.sparsegpt.dampening = cl.get<double>("dampening");
  options.micro_batch = cl.get<int>("micro-batch");
  return options;
}

// The calibration windows from the training split of --calib-source, or `data_train` (the
// tokenised training split of --data).
torch::Tensor calibration_tokens(const CommandLine& cl, const std::vector<TokenizedExample>& data_train,
                                 const Tokenizer& tokenizer, const ModelConfig& config) {
  const int length = cl.get<int>("calib-seqlen") == 0 ? config.max_seq_len : cl.get<int>("calib-seqlen");
  const int samples = cl.get<int>("calib-samples");
  auto options = dataset_options(cl);
  if (!cl.has("calib-source")) return calibration_windows(data_train, samples, length, options.seed);
  options.sources = cl.get<std::vector<std::string>>("calib-source");
  const auto examples = tokenize_dataset(load_instruction_dataset(options), tokenizer, config.max_seq_len).train;
  return calibration_windows(examples, samples, length, options.seed);
}

void print_perplexity_change(const std::string& held_out, const EvaluationReport& before, const EvaluationReport& after) {
  auto row = [](const TaskMetrics& b, const TaskMetrics& a) {
    std::cout << "  " << std::left << std::setw(24) << b.task << std::right << std::fixed << std::setprecision(3)
              << std::setw(10) << b.perplexity << std::setw(10) << a.perplexity << std::setw(9) << std::setprecision(1)
              << 100.0 * (a.perplexity / b.perplexity - 1) << "%\n";
  };
  std::cout << held_out << " perplexity (response tokens)\n  " << std::left << std::setw(24) << "task" << std::right
            << std::setw(10) << "dense" << std::setw(10) << "pruned" << std::setw(10) << "change" << "\n";
  for (size_t t = 0; t < before.tasks.size(); ++t) row(before.tasks[t], after.tasks[t]);
  row(before.overall, after.overall);
}

}  // namespace

int run_prune(int argc, const char* const* argv) {
  CommandLine cl("prune",
                 "Compress every linear weight of every decoder block in one shot: SparseGPT (Frantar and Alistarh "
                 "2023), Wanda or magnitude pruning, unstructured (--sparsity) or N:M (--nm), optionally stored as "
                 "int8 (--int8). Prints the achieved sparsity and reconstruction error of every matrix and the test "
                 "perplexity before and after.");
  add_prune_options(cl);
  if (!cl.parse(argc, argv, std::cout)) return 0;
  const auto compute = start_command(cl);
  const auto options = compression_options(cl);
  const auto model_path = cl.get<std::string>("model");
  auto loaded = load_model(model_path);
  MOPS_CHECK(!loaded.metadata.count("compression"),
             model_path << " is already compressed (see `mops info`); prune the dense model it came from");
  auto& model = loaded.model;
  model->to(compute.device);
  if (cl.get<int>("calib-seqlen") != 0) cl.get_int_in("calib-seqlen", 2, model->config().max_seq_len);
  const auto locks = claim_outputs("--out", {cl.get<std::string>("out")}, cl.get<bool>("overwrite"));
  const auto dataset = load_instruction_dataset(dataset_options(cl));
  const auto tokenizer = Tokenizer::load(cl.get<std::string>("tokenizer"));
  const auto split = tokenize_dataset(dataset, tokenizer, model->config().max_seq_len);
  const auto& test = split.test;
  const auto calibration = calibration_tokens(cl, split.train, tokenizer, model->config());
  const int batch_size = cl.get<int>("batch-size");

  const auto before = evaluate_perplexity(test, dataset.tasks, batch_size, backbone_logits(model));
  std::cerr << "calibration: " << calibration.size(0) << " sequences of " << calibration.size(1) << " tokens\n";
  const auto result = compress_model(model, calibration, options, std::cerr);
  const auto after = evaluate_perplexity(test, dataset.tasks, batch_size, backbone_logits(model));

  auto record = compression_record(options, result);
  record["calibration"] = {{"samples", calibration.size(0)}, {"seqlen", calibration.size(1)}};
  record["perplexity_before"] = perplexity_json(before);
  record["perplexity_after"] = perplexity_json(after);
  record["perplexity_split"] = split.held_out;
  const auto out = cl.get<std::string>("out");
  save_model(model, out, {{"compression", record.dump()}, {"compressed_from", model_path},
                          {"prune_config", cl.resolved_json()}},
             result.int8_weights);

  std::cout << format_matrix_table(result) << "\n";
  print_perplexity_change(split.held_out, before, after);
  std::cout << "\n" << prune_method_name(options.method) << " " << options.pattern.describe()
            << (options.int8 ? " + int8" : "") << ": " << result.zeros() << " of " << result.weights()
            << " block weights are zero; " << std::fixed << std::setprecision(1) << result.seconds
            << " s; wrote " << out << " (" << std::filesystem::file_size(out) << " bytes)\n";
  return 0;
}

}  // namespace mops
