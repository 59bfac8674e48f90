#include "centralized_run.h"

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "checkpoint.h"
#include "progress.h"
#include "prompt_state_io.h"
#include "run_start.h"

namespace mops {
namespace {

// Terminal progress and the results file.
class RunObserver : public TrainingObserver {
 public:
  // held_out: the split the evaluations are on ("test" | "validation")
  RunObserver(const std::string& label, int steps, const std::string& held_out, ResultsFile& results, PromptState& state)
      : progress_(label, steps, "steps", std::cerr), held_out_(held_out), results_(results), state_(state) {}

  void on_step(int64_t step, double loss, int64_t tokens, const torch::Tensor& gate) override {
    results_.append_train(step, loss, gate_step(gate));
    std::ostringstream fields;
    fields << "loss " << std::fixed << std::setprecision(4) << loss << " | "
           << std::setprecision(0) << double(tokens) / std::max(progress_.elapsed_seconds(), 1e-9) << " tok/s";
    if (last_ppl_ > 0) fields << " | " << held_out_ << " ppl " << std::setprecision(3) << last_ppl_;
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
  std::string held_out_;
  ResultsFile& results_;
  PromptState& state_;
  double last_ppl_ = 0;
};

// One method from its start state to the end of the main loop; returns the last evaluation and
// that of the start state.
MethodOutcome run_centralized_method(Llama& model, const PromptRunSettings& s, const MethodPath& output,
                                        const TokenizedSplit& data, const std::string& compression,
                                        const torch::Tensor& p0, const nlohmann::json& references,
                                        ActivationCache& cache) {
  const auto method = output.method;
  auto state = initial_prompt_state(s, method, model, p0, data);
  ResultsFile results(output.path, prompt_results_header(s, state->config(), data, method_name(state->config().method)));
  results.write_attribute("compression", compression);
  write_trainable_parameters(results, state, method_name(method));
  if (method == PromptMethod::kMop) pretrain_gate_for_run(s, model, state, data.train, cache);
  const auto start = write_start_state(results, references, model, state, data.test, data.tasks, s.train.eval_batch_size);
  RunObserver observer(std::string("train ") + method_name(method), s.train.steps, data.held_out, results, state);
  results.write_attribute("status", "running");
  auto options = s.train;
  options.lower_cache = &cache;
  const auto summary = train_prompts(model, state, data.train, data.test, data.tasks, options, observer);
  observer.finish();
  results.write_attribute("status", "finished");
  results.write_attribute("tokens_per_second", std::to_string(summary.tokens_per_second));
  results.write_attribute("main_loop_seconds", std::to_string(summary.seconds));
  results.close();
  std::cerr << method_name(method) << ": " << std::fixed << std::setprecision(1) << summary.seconds << " s, "
            << std::setprecision(0) << summary.tokens_per_second << " tokens/s; results in " << output.path << "\n"
            << cache.describe() << "\n";
  return {summary.final.report, start.overall.perplexity};
}

EvaluationReport evaluate_dense(const DenseReference& dense, const TokenizedSplit& data, int batch_size) {
  auto model = load_model(dense.path).model;
  model->freeze_on(dense.compute.device, dense.compute.dtype);
  return evaluate_perplexity(data.test, data.tasks, batch_size, backbone_logits(model));
}

}  // namespace

RunReports run_centralized(Llama& model, const PromptRunSettings& settings, const std::vector<MethodPath>& outputs,
                           const TokenizedSplit& data, const std::string& compression,
                           const std::optional<DenseReference>& dense) {
  RunReports reports;
  reports.held_out = data.held_out;
  const auto p0 = load_or_pretrain_first_prompts(settings.p0, settings.seed, model, data.train);  // (K0, C)
  reports.p0_only = evaluate_p0_only(model, p0, data.test, data.tasks, settings.train.eval_batch_size);
  nlohmann::json references{{"p0_only", perplexity_json(reports.p0_only)}};
  if (dense) {
    reports.dense = evaluate_dense(*dense, data, settings.train.eval_batch_size);
    references["dense"] = perplexity_json(*reports.dense);
  }
  auto cache = make_activation_cache(settings.activation_cache, model->device(), true);
  for (const auto& output : outputs) {
    add_method_outcome(reports, output.method,
                       run_centralized_method(model, settings, output, data, compression, p0, references, *cache));
  }
  return reports;
}

}  // namespace mops
