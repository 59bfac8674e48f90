// Resuming a federated run. The results file is also the checkpoint: every checkpoint_every
// rounds the global state (/state) and the root attribute checkpoint_round are written in the
// same snapshot as the round's rows (ResultsFile::begin_batch), so the file on disk always
// holds a whole checkpoint. The rest of a round's random state is its number: the active
// clients and the local batch orders are keyed by (seed, round) and (seed, client, round).
//
// A resumed run reads the checkpoint, recreates the results file with the rows up to the
// checkpoint round, and goes on from the round after it; it ends with the same state and
// metrics as an uninterrupted run (round_seconds and comm_seconds aside).
//
// Letters: R rounds, V evaluations, S train rows, A active clients, T tasks, E experts.
#pragma once
#include <string>
#include <vector>

#include "prompt_state.h"
#include "results_file.h"

namespace mops {

struct EvalRow {
  int64_t step = 0;
  std::vector<double> ppl;   // (T)
  double ppl_all = 0;
  GateEvaluation gate;       // for "mop"
};

struct ResumePoint {
  std::string status;       // "running", "finished", ...
  int checkpoint_round = 0; // the last round whose state /state holds
  PromptState state{nullptr};
  std::vector<RoundRecord> rounds;  // rounds 1..checkpoint_round
  std::vector<EvalRow> evaluations; // with step <= checkpoint_round
  std::vector<std::pair<int64_t, double>> train;  // (round, mean loss)
  std::string references;           // root attribute, JSON
  std::vector<float> gate_after_pretraining;      // (T, E), empty without gate pretraining
};

// Fails with a message naming the options when the resolved configurations (CommandLine::
// resolved_json) `stored` (the checkpoint's, from `path`) and `current` differ, except in
// `free_keys` and in options that `current` has at their defaults and `stored` lacks (added to
// mops since the checkpoint: a new option's default keeps what mops did before it).
void check_resume_config(const std::string& path, const std::string& stored, const std::string& current,
                         const std::vector<std::string>& free_keys);

// Fails with a clear message when `path` is not a federated results file of this configuration:
// `config_json` must equal the stored config except for the keys in `free_keys`.
ResumePoint read_resume_point(const std::string& path, const std::string& config_json,
                              const std::vector<std::string>& free_keys, const ModelConfig& backbone);

// Writes the resume point's rows, state and checkpoint_round into a fresh results file.
void replay_resume_point(const ResumePoint& point, ResultsFile& results);

}  // namespace mops
