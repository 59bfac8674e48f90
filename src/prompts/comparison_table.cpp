#include "comparison_table.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

namespace mops {

const MethodOutcome* RunReports::outcome(PromptMethod method) const {
  for (const auto& [m, outcome] : methods) {
    if (m == method) return &outcome;
  }
  return nullptr;
}

void add_method_outcome(RunReports& reports, PromptMethod method, MethodOutcome outcome) {
  reports.methods.emplace_back(method, std::move(outcome));
}

double start_perplexity(const std::string& references_json) {
  const auto references = nlohmann::json::parse(references_json, nullptr, /*allow_exceptions=*/false);
  if (!references.is_object() || !references.contains("start")) return std::numeric_limits<double>::quiet_NaN();
  return references["start"].value("overall", std::numeric_limits<double>::quiet_NaN());
}

namespace {

// What a method's main loop starts from, as the note under the table says it.
const char* start_of(PromptMethod method) {
  if (uses_mid_prompts(method)) return "Its mid prompts take P0's place from L_mid on";
  if (method == PromptMethod::kPrefix) return "Its prefixes start random";
  return "Its adapters start as the identity";
}

// Why a method that ends above P0 alone does: where it started, and which way training took it.
std::string note_worse_than_p0(const std::string& label, PromptMethod method, double end, double start, double p0,
                               const std::string& held_out) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(3) << "  note: " << label << " ends worse than P0 alone (" << end
      << " against " << p0 << " overall). ";
  if (!std::isfinite(start)) {
    out << "Where its training started is not in its results file (written before it was recorded).\n";
    return out.str();
  }
  out << start_of(method) << ", so before training it stood at " << start;
  if (end <= start) {
    out << ", and training brought it down, but not yet below P0 alone: a longer run (--steps; federated "
           "--rounds, --local-steps) gives it more room\n";
  } else {
    out << ", and training raised it: what it learned on the training records made the " << held_out
        << " split worse (the results file has /train/loss against /eval/ppl_all)\n";
  }
  return out.str();
}

std::string column_label(PromptMethod method, const std::string& baseline_label) {
  switch (method) {
    case PromptMethod::kPrompt: return baseline_label;
    case PromptMethod::kMop: return "MoPs";
    case PromptMethod::kLora: return "LoRA";
    case PromptMethod::kIa3: return "IA3";
    case PromptMethod::kPrefix: return "prefix";
    case PromptMethod::kMpt: return "MPT";
  }
  return "?";
}

}  // namespace

void print_comparison_table(std::ostream& out, const std::string& baseline_label, const RunReports& reports) {
  const EvaluationReport* dense = reports.dense ? &*reports.dense : nullptr;
  const MethodOutcome* mop = reports.outcome(PromptMethod::kMop);
  std::vector<std::pair<std::string, const EvaluationReport*>> columns, against;  // label, report
  for (const auto& [method, outcome] : reports.methods) {
    columns.emplace_back(column_label(method, baseline_label), &outcome.final);
    if (method != PromptMethod::kMop && mop) against.emplace_back(columns.back());
  }
  const EvaluationReport& p0_only = reports.p0_only;
  out << reports.held_out << " perplexity (response tokens)\n  " << std::left << std::setw(20) << "task" << std::right;
  if (dense) out << std::setw(10) << "dense";
  out << std::setw(10) << "P0 only";
  for (const auto& [label, report] : columns) out << std::setw(10) << label;
  // One gain column: "Gain (%)", as the paper's tables; several: "vs X (%)" each.
  auto gain_heading = [&](const std::string& label) { return against.size() == 1 ? "Gain (%)" : "vs " + label + " (%)"; };
  auto gain_width = [&](const std::string& label) { return std::max<int>(10, int(gain_heading(label).size()) + 2); };
  for (const auto& [label, report] : against) out << std::setw(gain_width(label) + 1) << gain_heading(label);
  out << "\n";
  // A task without test examples has no perplexity: "n/a" and a note instead of nan.
  auto cell = [&out](int width, double value, bool gain = false) {
    std::ostringstream text;
    text << std::fixed << std::setprecision(gain ? 1 : 3) << (gain ? std::showpos : std::noshowpos) << value;
    out << std::setw(width) << (std::isfinite(value) ? text.str() : "n/a");
  };
  auto row = [&](auto pick) {
    out << "  " << std::left << std::setw(20) << pick(p0_only).task << std::right;
    if (dense) cell(10, pick(*dense).perplexity);
    cell(10, pick(p0_only).perplexity);
    for (const auto& [label, report] : columns) cell(10, pick(*report).perplexity);
    for (const auto& [label, report] : against) {
      const double other = pick(*report).perplexity, m = pick(mop->final).perplexity;
      cell(gain_width(label), 100.0 * (other - m) / other, true);
    }
    out << "\n";
  };
  for (size_t t = 0; t < p0_only.tasks.size(); ++t) row([t](const EvaluationReport& r) { return r.tasks[t]; });
  row([](const EvaluationReport& r) { return r.overall; });
  const double p0 = p0_only.overall.perplexity;
  for (const auto& [method, outcome] : reports.methods) {
    if (outcome.final.overall.perplexity > p0) {
      out << note_worse_than_p0(column_label(method, baseline_label), method, outcome.final.overall.perplexity,
                                outcome.start, p0, reports.held_out);
    }
  }
  for (const auto& task : p0_only.tasks) {
    if (task.examples == 0)
      out << "  note: " << task.task << " has no " << reports.held_out << " examples, so no perplexity (n/a); more data "
          << "(--samples-per-source, --skills7-per-task) or a larger --" << reports.held_out << "-fraction gives it some\n";
  }
}

}  // namespace mops
