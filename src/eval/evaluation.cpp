#include "evaluation.h"

#include <cmath>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "errors.h"
#include "generate.h"

namespace mops {
namespace {

std::string trim(const std::string& text) {
  const auto begin = text.find_first_not_of(" \t\n");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\n") - begin + 1);
}

// A task without test examples has no perplexity: NaN, which tables print as "nan".
void finish(TaskMetrics& m, double nll) {
  m.perplexity = m.response_tokens ? std::exp(nll / double(m.response_tokens)) : std::nan("");
}

}  // namespace

std::vector<std::pair<double, int64_t>> response_nll(const std::vector<TokenizedExample>& examples, int batch_size,
                                                     const BatchLogits& logits_of) {
  MOPS_CHECK(batch_size > 0, "evaluation batch size must be positive");
  torch::NoGradGuard no_grad;
  std::vector<std::pair<double, int64_t>> out;
  for (size_t begin = 0; begin < examples.size(); begin += batch_size) {
    const auto batch = make_batch(examples, begin, std::min(examples.size(), begin + size_t(batch_size)));
    auto [nll, counts] = response_nll_per_example(logits_of(batch), batch);  // (B), (B) on the model's device
    const auto nll_host = nll.to(torch::kCPU, torch::kDouble), counts_host = counts.to(torch::kCPU, torch::kDouble);
    const auto n = nll_host.accessor<double, 1>(), c = counts_host.accessor<double, 1>();
    for (int64_t b = 0; b < n.size(0); ++b) out.emplace_back(n[b], int64_t(c[b]));
  }
  return out;
}

BatchLogits backbone_logits(Llama& model) {
  return [model](const ExampleBatch& batch) mutable { return model->forward(batch.ids); };
}

EvaluationReport evaluate_perplexity(const std::vector<TokenizedExample>& examples,
                                     const std::vector<std::string>& task_names, int batch_size,
                                     const BatchLogits& logits_of) {
  EvaluationReport report;
  for (const auto& name : task_names) report.tasks.push_back({name});
  report.overall.task = "all";
  std::vector<double> task_nll(task_names.size(), 0.0);
  double total_nll = 0;
  const auto nll = response_nll(examples, batch_size, logits_of);
  for (size_t i = 0; i < examples.size(); ++i) {
    auto& m = report.tasks.at(examples[i].task);
    m.examples += 1;
    m.response_tokens += size_t(nll[i].second);
    task_nll[examples[i].task] += nll[i].first;
    report.overall.examples += 1;
    report.overall.response_tokens += size_t(nll[i].second);
    total_nll += nll[i].first;
  }
  for (size_t t = 0; t < task_names.size(); ++t) finish(report.tasks[t], task_nll[t]);
  finish(report.overall, total_nll);
  return report;
}

void add_exact_match(EvaluationReport& report, Llama& model, const Tokenizer& tokenizer,
                     const std::vector<InstructionRecord>& records, const std::vector<int>& record_tasks,
                     size_t per_task, int max_new_tokens) {
  std::vector<size_t> tried(report.tasks.size(), 0), correct(report.tasks.size(), 0);
  SamplingOptions greedy;
  greedy.greedy = true;
  greedy.max_new_tokens = max_new_tokens;
  greedy.stop_id = tokenizer.eos_id();
  for (size_t i = 0; i < records.size(); ++i) {
    const int task = record_tasks[i];
    if (tried[task] >= per_task) continue;
    auto result = generate(model, tokenize_prompt(records[i], tokenizer).ids, greedy);
    if (!result.ids.empty() && result.ids.back() == tokenizer.eos_id()) result.ids.pop_back();
    const std::string answer = tokenizer.decode(std::vector<int>(result.ids.begin(), result.ids.end()));
    ++tried[task];
    if (trim(answer) == trim(records[i].response)) ++correct[task];
  }
  size_t all_tried = 0, all_correct = 0;
  for (size_t t = 0; t < report.tasks.size(); ++t) {
    if (tried[t]) report.tasks[t].exact_match = double(correct[t]) / double(tried[t]);
    all_tried += tried[t];
    all_correct += correct[t];
  }
  if (all_tried) report.overall.exact_match = double(all_correct) / double(all_tried);
}

EvaluationReport evaluate_test_split(Llama& model, const Tokenizer& tokenizer, const InstructionDataset& dataset,
                                     const std::vector<TokenizedExample>& test_examples, int batch_size,
                                     size_t exact_match_per_task, int max_new_tokens) {
  auto report = evaluate_perplexity(test_examples, dataset.tasks, batch_size, backbone_logits(model));
  if (exact_match_per_task > 0) {
    std::vector<int> tasks;
    for (const auto& r : dataset.test) tasks.push_back(dataset.task_id(r.task));
    add_exact_match(report, model, tokenizer, dataset.test, tasks, exact_match_per_task, max_new_tokens);
  }
  return report;
}

std::string format_report(const EvaluationReport& report) {
  std::ostringstream out;
  out << std::left << std::setw(20) << "task" << std::right << std::setw(9) << "examples" << std::setw(11)
      << "resp. tok" << std::setw(12) << "perplexity" << std::setw(13) << "exact match\n";
  auto row = [&](const TaskMetrics& m) {
    out << std::left << std::setw(20) << m.task << std::right << std::setw(9) << m.examples << std::setw(11)
        << m.response_tokens << std::setw(12) << std::fixed << std::setprecision(3) << m.perplexity;
    if (m.exact_match >= 0) out << std::setw(11) << std::setprecision(1) << 100.0 * m.exact_match << " %";
    out << "\n";
  };
  for (const auto& m : report.tasks) row(m);
  row(report.overall);
  return out.str();
}

nlohmann::json perplexity_json(const EvaluationReport& report) {
  nlohmann::json out;
  for (const auto& t : report.tasks) out[t.task] = t.perplexity;
  out["overall"] = report.overall.perplexity;
  return out;
}

}  // namespace mops
