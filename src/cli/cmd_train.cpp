// `mops train`: MoPs (Algorithm 1) and/or the prompt-tuning baseline on a compressed model,
// evaluated on the test split, streamed to HDF5; and `mops prompts pretrain` for P0.
#include <iomanip>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "checkpoint.h"
#include "commands.h"
#include "dataset_options.h"
#include "prompt_options.h"
#include "command_start.h"
#include "errors.h"
#include "output_files.h"
#include "progress.h"
#include "prompt_state_io.h"
#include "prompt_training.h"

namespace mops {
namespace {

// Terminal progress and the results file.
class RunObserver : public TrainingObserver {
 public:
  RunObserver(const std::string& label, int steps, ResultsFile& results, PromptState& state)
      : progress_(label, steps, "steps", std::cerr), results_(results), state_(state) {}

  void on_step(int64_t step, double loss, int64_t tokens) override {
    results_.append_train(step, loss);
    std::ostringstream fields;
    fields << "loss " << std::fixed << std::setprecision(4) << loss << " | "
           << std::setprecision(0) << double(tokens) / std::max(progress_.elapsed_seconds(), 1e-9) << " tok/s";
    if (last_ppl_ > 0) fields << " | test ppl " << std::setprecision(3) << last_ppl_;
    progress_.update(step, fields.str());
  }

  void on_eval(int64_t step, const PromptEvaluation& evaluation) override {
    append_evaluation(results_, step, evaluation);
    write_prompt_state(results_, state_);  // the last good state, at every evaluation
    last_ppl_ = evaluation.report.overall.perplexity;
  }

  void finish() { progress_.finish(); }

 private:
  Progress progress_;
  ResultsFile& results_;
  PromptState& state_;
  double last_ppl_ = 0;
};

TrainOptions train_options(const CommandLine& cl) {
  TrainOptions o = optimizer_options(cl);
  o.steps = cl.get<int>("steps");
  o.eval_every = cl.get<int>("eval-every");
  return o;
}

struct MethodRun {
  PromptMethod method;
  PromptEvaluation final;
  TrainingSummary summary;
};

MethodRun run_centralized_method(const CommandLine& cl, PromptMethod method, const std::string& path, Llama& model,
                                 const std::string& compression, const torch::Tensor& p0,
                                 const InstructionDataset& dataset, const TokenizedSplit& data,
                                 const nlohmann::json& references, ActivationCache& cache) {
  auto state = initial_prompt_state(cl, method, model, p0, data.train);
  const auto& config = state->config();
  ResultsHeader header;
  header.config_json = cl.resolved_json();
  header.method = method_name(method);
  header.mode = "centralized";
  header.seed = cl.seed();
  header.tasks = dataset.tasks;
  header.experts = config.experts;
  header.prompts_per_expert = config.prompts_per_expert;
  ResultsFile results(path, header);
  results.write_attribute("references", references.dump());
  results.write_attribute("compression", compression);
  if (method == PromptMethod::kMop && cl.get<int>("gate-pretrain-steps") > 0) {
    pretrain_gate_option(cl, model, state, data.train, cache);
    write_gate_after_pretraining(results, model, state, data.test, dataset.tasks, cl.get<int>("eval-batch-size"));
  }
  RunObserver observer(std::string("train ") + method_name(method), cl.get<int>("steps"), results, state);
  results.write_attribute("status", "running");
  auto options = train_options(cl);
  options.lower_cache = &cache;
  MethodRun run{method, {}, train_prompts(model, state, data.train, data.test, dataset.tasks, options, observer)};
  observer.finish();
  run.final = run.summary.final;
  results.write_attribute("status", "finished");
  results.write_attribute("tokens_per_second", std::to_string(run.summary.tokens_per_second));
  results.close();
  std::cerr << method_name(method) << ": " << std::fixed << std::setprecision(1) << run.summary.seconds << " s, "
            << std::setprecision(0) << run.summary.tokens_per_second << " tokens/s; results in " << path << "\n"
            << cache.describe() << "\n";
  return run;
}

}  // namespace

int run_train(int argc, const char* const* argv) {
  CommandLine cl("train",
                 "Train MoPs (mid-layer prompt experts with a gate, Algorithm 1) and/or the prompt-tuning baseline on a "
                 "compressed model; evaluate test perplexity per task; stream results to HDF5.");
  cl.add_choice("method", "both", {"mop", "prompt", "both"}, "MoPs, the prompt baseline, or both (baseline first)");
  cl.options().add_options()
      ("model", po::value<std::string>()->required()->value_name("PATH"), "compressed checkpoint (mops prune)")
      ("tokenizer", po::value<std::string>()->required()->value_name("FILE"), "SentencePiece .model")
      ("out", po::value<std::string>()->required()->value_name("FILE.h5"),
       "results file (with --method both: FILE.mop.h5 and FILE.prompt.h5); never replaced without --overwrite")
      ("dense-model", po::value<std::string>()->value_name("PATH"), "the uncompressed model, evaluated as a reference");
  cl.add_number<int>("steps", 20000, Range::closed(1, std::numeric_limits<int>::max()), "training steps (paper: 20000)");
  cl.add_number<int>("eval-every", 2000, Range::closed(1, std::numeric_limits<int>::max()),
                     "steps between test evaluations (and at the end)");
  add_prompt_options(cl);
  add_dataset_options(cl, true);
  cl.add_threads_option();
  cl.add_device_options(true);
  cl.add_seed_option();
  cl.add_overwrite_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  const auto compute = start_command(cl);
  const auto method = cl.get<std::string>("method");
  auto loaded = load_model(cl.get<std::string>("model"));
  auto& model = loaded.model;
  validate_prompt_options(cl, model->config());
  const auto paths = method_results_paths(cl, method, method_name);
  std::vector<std::string> outputs;
  for (const auto& [m, path] : paths) outputs.push_back(path);
  const auto locks = claim_outputs("--out", outputs, cl.get<bool>("overwrite"));
  const auto compression = compression_attribute(loaded.metadata);
  model->freeze_on(compute.device, compute.dtype);
  const auto dataset = load_instruction_dataset(dataset_options(cl));
  const auto tokenizer = Tokenizer::load(cl.get<std::string>("tokenizer"));
  const auto data = tokenize_dataset(dataset, tokenizer, model->config().max_seq_len - 1 - prompt_positions(cl));
  const int eval_batch = cl.get<int>("eval-batch-size");
  const auto p0 = first_prompts(cl, model, data.train);

  const auto p0_only = evaluate_p0_only(model, p0, data.test, dataset.tasks, eval_batch);
  nlohmann::json references{{"p0_only", perplexity_json(p0_only)}};
  std::unique_ptr<EvaluationReport> dense;
  if (cl.has("dense-model")) {
    auto dense_model = load_model(cl.get<std::string>("dense-model")).model;
    dense_model->freeze_on(compute.device, compute.dtype);
    dense = std::make_unique<EvaluationReport>(
        evaluate_perplexity(data.test, dataset.tasks, eval_batch, backbone_logits(dense_model)));
    references["dense"] = perplexity_json(*dense);
  }
  std::vector<MethodRun> runs;
  auto cache = activation_cache_option(cl, compute.device, true);
  for (const auto& [m, path] : paths)
    runs.push_back(run_centralized_method(cl, m, path, model, compression, p0, dataset, data, references, *cache));
  const EvaluationReport* baseline = nullptr;
  const EvaluationReport* mop = nullptr;
  for (const auto& r : runs) (r.method == PromptMethod::kMop ? mop : baseline) = &r.final.report;
  print_comparison_table("Baseline", baseline, mop, p0_only, dense.get());
  return 0;
}

int run_prompts_pretrain(int argc, const char* const* argv) {
  CommandLine cl("prompts pretrain",
                 "Pretrain the first-layer prompts P0 on a (compressed) model: a short run of Adam on the response loss "
                 "through the whole model; both MoPs and the baseline then start from them, frozen.");
  cl.options().add_options()
      ("model", po::value<std::string>()->required()->value_name("PATH"), "compressed checkpoint")
      ("tokenizer", po::value<std::string>()->required()->value_name("FILE"), "SentencePiece .model")
      ("out", po::value<std::string>()->required()->value_name("FILE"), "where to write P0 (.safetensors)");
  add_p0_options(cl);
  add_dataset_options(cl, true);
  cl.add_threads_option();
  cl.add_device_options(true);
  cl.add_seed_option();
  cl.add_overwrite_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  const auto compute = start_command(cl);
  auto model = load_model(cl.get<std::string>("model")).model;
  validate_p0_options(cl, model->config());
  const auto locks = claim_outputs("--out", {cl.get<std::string>("out")}, cl.get<bool>("overwrite"));
  model->freeze_on(compute.device, compute.dtype);
  const auto dataset = load_instruction_dataset(dataset_options(cl));
  const auto tokenizer = Tokenizer::load(cl.get<std::string>("tokenizer"));
  const auto data = tokenize_dataset(dataset, tokenizer, model->config().max_seq_len - 1 - cl.get<int>("p0-prompts"));
  const auto p0 = first_prompts(cl, model, data.train);
  const auto out = cl.get<std::string>("out");
  save_first_prompts(out, p0, {{"model", cl.get<std::string>("model")}, {"p0_config", cl.resolved_json()}});
  std::cout << "wrote " << out << " (" << p0.size(0) << " x " << p0.size(1) << ")\n";
  return 0;
}

}  // namespace mops
