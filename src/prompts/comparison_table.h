// The table a run ends with: test perplexity per task and overall of the references and the
// methods, and the gain of MoPs over each other method in %, as the paper's tables.
#pragma once
#include <iosfwd>
#include <limits>
#include <optional>
#include <string>

#include <vector>

#include "evaluation.h"
#include "prompt_state.h"

namespace mops {

// One method's part of RunReports: its final report and where its main loop started.
struct MethodOutcome {
  EvaluationReport final;
  // The overall perplexity of the state its main loop started from (its references' "start");
  // NaN when not known (a file written before it was recorded).
  double start = std::numeric_limits<double>::quiet_NaN();
};

// The final reports of a run on its held-out split, one column each in the table.
struct RunReports {
  std::string held_out = "test";          // the split they are on: "test" | "validation" (TokenizedSplit)
  EvaluationReport p0_only;               // the model with P0 alone
  std::optional<EvaluationReport> dense;  // the uncompressed model, when it was given
  std::vector<std::pair<PromptMethod, MethodOutcome>> methods;  // the methods that ran, in their order
  // The outcome of `method`, or null when it did not run.
  const MethodOutcome* outcome(PromptMethod method) const;
};
void add_method_outcome(RunReports& reports, PromptMethod method, MethodOutcome outcome);
// The "start" overall perplexity in a results file's references (JSON), NaN when absent.
double start_perplexity(const std::string& references_json);

// Columns dense (when given), P0 only, each method in the order it ran (the prompt baseline
// headed `baseline_label`, then MoPs, LoRA, IA3), and with MoPs and one other method Gain (%),
// (other - MoPs) / other, or with several others one "MoPs vs X" gain column each; a task without
// held-out examples shows n/a and a note. A method that ends worse than P0 alone gets a note
// saying so, with where it started and what that means.
void print_comparison_table(std::ostream& out, const std::string& baseline_label, const RunReports& reports);

}  // namespace mops
