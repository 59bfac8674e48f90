#include "comparison_table.h"

#include <cmath>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

namespace mops {

void add_method_outcome(RunReports& reports, bool mop, MethodOutcome outcome) {
  (mop ? reports.mop : reports.baseline) = std::move(outcome.final);
  (mop ? reports.mop_start : reports.baseline_start) = outcome.start;
}

double start_perplexity(const std::string& references_json) {
  const auto references = nlohmann::json::parse(references_json, nullptr, /*allow_exceptions=*/false);
  if (!references.is_object() || !references.contains("start")) return std::numeric_limits<double>::quiet_NaN();
  return references["start"].value("overall", std::numeric_limits<double>::quiet_NaN());
}

namespace {

// Why a method that ends above P0 alone does: where it started, and which way training took it.
std::string note_worse_than_p0(const std::string& label, double end, double start, double p0,
                               const std::string& held_out) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(3) << "  note: " << label << " ends worse than P0 alone (" << end
      << " against " << p0 << " overall). ";
  if (!std::isfinite(start)) {
    out << "Where its training started is not in its results file (written before it was recorded).\n";
    return out.str();
  }
  out << "Its mid prompts take P0's place from L_mid on, so before training it stood at " << start;
  if (end <= start) {
    out << ", and training brought it down, but not yet below P0 alone: a longer run (--steps; federated "
           "--rounds, --local-steps) gives it more room\n";
  } else {
    out << ", and training raised it: what it learned on the training records made the " << held_out
        << " split worse (the results file has /train/loss against /eval/ppl_all)\n";
  }
  return out.str();
}

}  // namespace

void print_comparison_table(std::ostream& out, const std::string& baseline_label, const RunReports& reports) {
  const EvaluationReport* dense = reports.dense ? &*reports.dense : nullptr;
  const EvaluationReport* baseline = reports.baseline ? &*reports.baseline : nullptr;
  const EvaluationReport* mop = reports.mop ? &*reports.mop : nullptr;
  const EvaluationReport& p0_only = reports.p0_only;
  out << reports.held_out << " perplexity (response tokens)\n  " << std::left << std::setw(20) << "task" << std::right;
  if (dense) out << std::setw(10) << "dense";
  out << std::setw(10) << "P0 only";
  if (baseline) out << std::setw(10) << baseline_label;
  if (mop) out << std::setw(10) << "MoPs";
  if (baseline && mop) out << std::setw(11) << "Gain (%)";
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
    if (baseline) cell(10, pick(*baseline).perplexity);
    if (mop) cell(10, pick(*mop).perplexity);
    if (baseline && mop) {
      const double b = pick(*baseline).perplexity, m = pick(*mop).perplexity;
      cell(10, 100.0 * (b - m) / b, true);
    }
    out << "\n";
  };
  for (size_t t = 0; t < p0_only.tasks.size(); ++t) row([t](const EvaluationReport& r) { return r.tasks[t]; });
  row([](const EvaluationReport& r) { return r.overall; });
  const double p0 = p0_only.overall.perplexity;
  if (baseline && baseline->overall.perplexity > p0)
    out << note_worse_than_p0(baseline_label, baseline->overall.perplexity, reports.baseline_start, p0, reports.held_out);
  if (mop && mop->overall.perplexity > p0)
    out << note_worse_than_p0("MoPs", mop->overall.perplexity, reports.mop_start, p0, reports.held_out);
  for (const auto& task : p0_only.tasks) {
    if (task.examples == 0)
      out << "  note: " << task.task << " has no " << reports.held_out << " examples, so no perplexity (n/a); more data "
          << "(--samples-per-source, --skills7-per-task) or a larger --" << reports.held_out << "-fraction gives it some\n";
  }
}

}  // namespace mops
