// The table a run ends with: test perplexity per task and overall of the references and the
// methods, and the gain of MoPs over the baseline in %, as the paper's tables.
#pragma once
#include <iosfwd>
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
};

// Columns dense (when given), P0 only, the baseline (headed `baseline_label`), MoPs, and
// Gain (%) when both methods ran; a task without held-out examples shows n/a and a note.
void print_comparison_table(std::ostream& out, const std::string& baseline_label, const RunReports& reports);

}  // namespace mops
