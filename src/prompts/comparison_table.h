// The table a run ends with: test perplexity per task and overall of the references and the
// methods, and the gain of MoPs over the baseline in %, as the paper's tables.
#pragma once
#include <iosfwd>
#include <limits>
#include <optional>
#include <string>

#include "evaluation.h"

namespace mops {

// The final reports of a run on its held-out split, one column each in the table.
struct RunReports {
  std::string held_out = "test";             // the split they are on: "test" | "validation" (TokenizedSplit)
  EvaluationReport p0_only;                  // the model with P0 alone
  std::optional<EvaluationReport> dense;     // the uncompressed model, when it was given
  std::optional<EvaluationReport> baseline;  // the prompt baseline (FedPrompt when federated), when it ran
  std::optional<EvaluationReport> mop;       // MoPs, when it ran
  // The overall perplexity of the state each method's main loop started from (its references'
  // "start"); NaN when not known (a file written before it was recorded).
  double baseline_start = std::numeric_limits<double>::quiet_NaN();
  double mop_start = std::numeric_limits<double>::quiet_NaN();
};

// One method's part of RunReports: its final report and where its main loop started.
struct MethodOutcome {
  EvaluationReport final;
  double start = std::numeric_limits<double>::quiet_NaN();
};
// Puts `outcome` in the baseline's or MoPs' place.
void add_method_outcome(RunReports& reports, bool mop, MethodOutcome outcome);
// The "start" overall perplexity in a results file's references (JSON), NaN when absent.
double start_perplexity(const std::string& references_json);

// Columns dense (when given), P0 only, the baseline (headed `baseline_label`), MoPs, and
// Gain (%) when both methods ran; a task without held-out examples shows n/a and a note. A
// method that ends worse than P0 alone gets a note saying so, with where it started and what
// that means.
void print_comparison_table(std::ostream& out, const std::string& baseline_label, const RunReports& reports);

}  // namespace mops
