// A centralized run (`mops train`) on a frozen, compressed model: P0 read or pretrained (shared
// by both methods), the references "P0 only" and, when given, the dense model, then each method
// in turn (the baseline, then MoPs) from its start state through the main loop, with every step
// and evaluation streamed to its results file (and the state at every evaluation). Progress and
// timings go to stderr; the comparison table is the caller's (comparison_table.h).
// docs/DESIGN.md, section 3, has the data flow.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "comparison_table.h"
#include "compute_device.h"
#include "prompt_run_settings.h"
#include "run_results.h"
#include "tokenized_split.h"

namespace mops {

// The uncompressed model, evaluated as a reference after P0 (loaded then, and dropped after).
struct DenseReference {
  std::string path;
  ComputeDevice compute;  // where it runs, as the compressed model
};

// `model` is frozen on its device; `outputs` lists the methods to run with their results files
// (method_results_paths), which are replaced; `compression` is their "compression" attribute
// (compression_attribute). Returns P0 only, dense and each method's last evaluation, which is
// also the last /eval row of its file.
RunReports run_centralized(Llama& model, const PromptRunSettings& settings, const std::vector<MethodPath>& outputs,
                           const TokenizedSplit& data, const std::string& compression,
                           const std::optional<DenseReference>& dense = std::nullopt);

}  // namespace mops
