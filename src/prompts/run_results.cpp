#include "run_results.h"

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

namespace mops {

std::vector<MethodPath> method_results_paths(const std::string& out, const std::string& chosen,
                                             const char* (*name_of)(PromptMethod)) {
  const std::filesystem::path file = out;
  std::vector<MethodPath> paths;
  for (auto method : {PromptMethod::kPrompt, PromptMethod::kMop, PromptMethod::kLora, PromptMethod::kIa3,
                      PromptMethod::kPrefix, PromptMethod::kMpt}) {
    const std::string name = name_of(method);
    const bool paper_method = method == PromptMethod::kPrompt || method == PromptMethod::kMop;
    if (chosen == "both" && !paper_method) continue;  // both: the baseline, then MoPs
    if (chosen == "both")
      paths.push_back({method, (file.parent_path() / (file.stem().string() + "." + name + file.extension().string())).string()});
    else if (chosen == name)
      paths.push_back({method, file.string()});
  }
  return paths;
}

namespace {

std::vector<double> values_of(const torch::Tensor& t) {
  auto d = t.to(torch::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

}  // namespace

ResultsHeader prompt_results_header(const PromptRunSettings& settings, const MopConfig& config,
                                    const TokenizedSplit& data, const std::string& method,
                                    int active_clients) {
  ResultsHeader header;
  header.config_json = settings.config_json;
  header.method = method;
  header.mode = active_clients > 0 ? "federated" : "centralized";
  header.seed = settings.seed;
  header.tasks = data.tasks;
  header.held_out = data.held_out;
  header.experts = config.experts;
  header.prompts_per_expert = config.prompts_per_expert;
  header.active_clients = active_clients;
  return header;
}

void append_evaluation(ResultsFile& results, int64_t step, const PromptEvaluation& evaluation) {
  std::vector<double> ppl;  // (T)
  for (const auto& t : evaluation.report.tasks) ppl.push_back(t.perplexity);
  GateEvaluation gate;
  if (evaluation.gate_by_task.defined()) {
    gate.by_task = values_of(evaluation.gate_by_task);
    gate.entropy = values_of(evaluation.gate_entropy_by_task);
    gate.experts_used = values_of(evaluation.experts_used_by_task);
  }
  results.append_eval(step, ppl, evaluation.report.overall.perplexity, gate);
}

GateStep gate_step(const torch::Tensor& gate) {
  if (!gate.defined()) return {};
  const auto g = gate.to(torch::kCPU, torch::kDouble);  // (B, E)
  return {values_of(g.mean(0)), gate_entropy(g).mean().item<double>()};
}

EvaluationReport write_start_state(ResultsFile& results, nlohmann::json references, Llama& model, PromptState& state,
                                   const std::vector<TokenizedExample>& test, const std::vector<std::string>& tasks,
                                   int batch_size) {
  const auto start = evaluate_prompted(model, state, test, tasks, batch_size);
  references["start"] = perplexity_json(start.report);
  results.write_attribute("references", references.dump());
  if (start.gate_by_task.defined()) {
    const auto values = values_of(start.gate_by_task);  // (T, E)
    results.write_state("gate_by_task_after_pretraining", std::vector<float>(values.begin(), values.end()),
                        start.gate_by_task.sizes().vec());
  }
  return start.report;
}

void write_trainable_parameters(ResultsFile& results, PromptState& state, const std::string& label) {
  const int64_t count = state->trained_values();
  results.write_attribute("trainable_parameters", std::to_string(count));
  std::cerr << label << ": " << count << " trainable parameters\n";
}

std::string compression_attribute(const std::map<std::string, std::string>& model_metadata) {
  const auto found = model_metadata.find("compression");
  if (found == model_metadata.end()) return nlohmann::json{{"method", "none"}}.dump();
  auto record = nlohmann::json::parse(found->second);
  record.erase("matrices");
  return record.dump();
}

}  // namespace mops
