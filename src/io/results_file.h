// The HDF5 results file of a run: schema "mops-results/1" (README, "Results files (HDF5)").
//
// Letters: S train rows, V evaluations, R federated rounds, T tasks, E experts,
// P prompts per expert, A active clients per round.
//
//   root attributes  schema, config (JSON), method, mode, seed (uint64), git_commit, + extras
//   /tasks           (T) variable-length UTF-8 strings
//   /experts         (2) int64 = [E, P], also as its attributes "E" and "P"
//   /train/step      (S) int64        /train/loss     (S) float64
//   /train/gate_load (S, E), /train/gate_entropy (S)    method "mop", mode "centralized" only
//   /eval/step       (V) int64        /eval/ppl       (V, T)    /eval/ppl_all (V)
//   /gate/by_task    (V, T, E), /gate/entropy (V, T), /gate/experts_used (V, T)   method "mop" only
//   /fed/round (R) int64, /fed/ppl (R, T) (NaN in rounds without evaluation),
//   /fed/clients (R, A) int64, /fed/client_gate (R, A, E) ("mop" only),
//   /fed/client_examples (R, A) int64, /fed/client_loss (R, A), /fed/bytes_reduced (R),
//   /fed/round_seconds (R), /fed/comm_seconds (R), /fed/wait_seconds (R)   mode "federated" only
//   /fed/NAME        int64 tables written once (write_table): partition (C, T), client_rank (C)
//   /state/NAME      float32, any shape (final prompts, gate weights)
// The series are chunked and extendible and exist (empty) from the start.
//
// Crash safety: the file lives in memory (HDF5 core driver) and each write puts a complete
// snapshot on disk: the file image goes to a temporary file of its own (src/base/atomic_file.h), is
// fsync'ed, and is renamed over PATH.
// rename() is atomic, so PATH is always a whole, closed HDF5 file: a run killed at any moment
// leaves the last snapshot, and readers (h5py.File(path, "r"), also while the run goes on)
// never see a half-written file and never meet a lock. Measured here (HDF5 1.10.8, writers
// appending in a tight loop, SIGKILL after 5-200 ms): 192 of 192 killed files opened and
// were consistent, and 36 of 36 h5py reads of live files succeeded. The alternatives:
// - SWMR (libver latest, H5Fstart_swmr_write, H5Dflush per append): a killed file stays
//   marked "already open for write": plain H5Fopen and h5py.File(path, "r") failed 49 of 49
//   times (only SWMR readers open it, and 13 of those 49 showed one step's series at
//   different lengths); plain h5py could not open live files either; no dataset may be
//   created once SWMR writing has started.
// - open-append-close per write: 3 of 196 killed files had series of different lengths,
//   and 36 of 40 h5py opens of a live file failed on HDF5's file lock.
// The price is writing the whole file per snapshot: here 0.6 ms for 300 KB, 2.5 ms for
// 1.8 MB, 50 ms for 50 MB, plus the fsync (0-7 ms on this busy disk). Memory: twice the file.
//
// A snapshot is written at construction, at every append_eval, append_round, write_state,
// write_table, write_attribute, flush, end_batch and close (inside a batch only at its end);
// train rows are written with those and by append_train itself at most once a second, so a
// kill loses at most the last second of train rows.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace mops {

struct ResultsHeader {
  std::string config_json;  // the whole run config as JSON
  std::string method;       // "mop" | "prompt" | "fedprompt" | "lora" | "ia3" | "prefix" | "mpt"
  std::string mode;         // "centralized" | "federated"
  uint64_t seed = 0;
  std::vector<std::string> tasks;  // (T)
  std::string held_out = "test";   // the split /eval is on: "test" | "validation"
  int experts = 0;                 // E (> 0 for method "mop")
  int prompts_per_expert = 0;      // P
  int active_clients = 0;          // A: > 0 exactly when mode is "federated"
};

// What the gate did at one evaluation, per task (method "mop"; empty vectors otherwise).
struct GateEvaluation {
  std::vector<double> by_task;       // (T, E) row-major: the mean gate vector
  std::vector<double> entropy;       // (T): the mean per-example gate entropy (nats)
  std::vector<double> experts_used;  // (T): the mean per-example number of experts with mass > 0.1
};

// What the gate did in one training step (method "mop", mode "centralized"; empty otherwise).
struct GateStep {
  std::vector<double> load;  // (E): the gate averaged over the step's batch
  double entropy = 0;        // the batch's mean per-example gate entropy (nats)
};

// One federated round (A active clients, E experts, T tasks).
struct RoundRecord {
  int64_t round = 0;
  std::vector<double> ppl;              // (T); NaN where the round was not evaluated
  std::vector<int64_t> clients;         // (A) ids of the active clients
  std::vector<double> client_gate;      // (A, E) row-major, method "mop"; empty otherwise
  std::vector<int64_t> client_examples; // (A) training examples of each active client
  std::vector<double> client_loss;      // (A) mean local training loss
  double bytes_reduced = 0;             // payload the round's collectives moved
  double round_seconds = 0;
  double comm_seconds = 0;              // of round_seconds, moving data inside the collectives
  double wait_seconds = 0;              // of round_seconds, waiting for the other ranks to arrive
};

class ResultsFile {
 public:
  // Creates (or replaces) PATH with the header and empty series.
  ResultsFile(const std::string& path, const ResultsHeader& header);
  // Writes pending train rows (errors are printed, not thrown); call close() to see them.
  ~ResultsFile();
  ResultsFile(const ResultsFile&) = delete;
  ResultsFile& operator=(const ResultsFile&) = delete;

  // `gate` is required exactly where /train/gate_load exists (centralized MoPs).
  void append_train(int64_t step, double loss, const GateStep& gate = {});
  // ppl_per_task (T); `gate` required for method "mop", empty otherwise.
  void append_eval(int64_t step, const std::vector<double>& ppl_per_task, double ppl_all,
                   const GateEvaluation& gate = {});
  void append_round(const RoundRecord& record);
  // /fed/NAME as int64 with the given shape, written once (federated runs only).
  void write_table(const std::string& name, const std::vector<int64_t>& values,
                   const std::vector<int64_t>& shape);
  // /state/NAME as float32 with the given shape (any rank); replaces an earlier NAME.
  void write_state(const std::string& name, const std::vector<float>& values,
                   const std::vector<int64_t>& shape);
  // An extra string attribute on the root (e.g. status = "running" / "finished"); replaces
  // an earlier one of that name, never one of the schema's own.
  void write_attribute(const std::string& name, const std::string& value);
  // The writes between begin_batch() and end_batch() reach the disk together, in the one
  // snapshot end_batch() writes: a federated round and its checkpoint land whole or not at all.
  void begin_batch();
  void end_batch();
  void flush();  // writes a snapshot now
  void close();  // writes the last snapshot and frees the in-memory file; idempotent

  const std::string& path() const { return path_; }

 private:
  void write_header(const ResultsHeader& header);
  void create_empty_series();
  void write_snapshot();
  void check_open(const char* method) const;

  std::string path_;
  int64_t file_ = -1;  // hid_t of the in-memory HDF5 file; -1 once closed
  int tasks_ = 0, experts_ = 0, clients_ = 0;
  bool has_gate_ = false;
  bool train_pending_ = false;  // train rows not yet in a snapshot
  bool batch_open_ = false;     // between begin_batch() and end_batch()
  std::chrono::steady_clock::time_point last_snapshot_;
  std::vector<char> image_;  // the file image, reused between snapshots
};

// Readers (tests, `mops generate --prompts results.h5`, tools). NAME is a path in the
// file such as "/eval/ppl"; `shape`, when given, receives the dataset's dimensions.
std::vector<float> read_state(const std::string& path, const std::string& name,
                              std::vector<int64_t>* shape);
std::vector<double> read_dataset(const std::string& path, const std::string& name,
                                 std::vector<int64_t>* shape = nullptr);
std::vector<std::string> read_strings(const std::string& path, const std::string& name);
std::string read_string_attribute(const std::string& path, const std::string& name);

}  // namespace mops
