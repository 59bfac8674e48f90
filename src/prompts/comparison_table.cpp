#include "comparison_table.h"

#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace mops {

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
  for (const auto& task : p0_only.tasks) {
    if (task.examples == 0)
      out << "  note: " << task.task << " has no " << reports.held_out << " examples, so no perplexity (n/a); more data "
          << "(--samples-per-source, --skills7-per-task) or a larger --" << reports.held_out << "-fraction gives it some\n";
  }
}

}  // namespace mops
