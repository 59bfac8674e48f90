// `mpirun -np R mops federate` on the embedded base model and a small skills7 federation
// (ctest label mpi): the same results for 1, 2 and 4 ranks, resume after a rank is killed,
// the bytes that cross ranks, and the errors for impossible placements and mismatched configs.
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <thread>

#include "results_file.h"
#include "test_support.h"

extern char** environ;

namespace mops {
namespace {

const std::string kMpirun =
    "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 mpirun "
    "--oversubscribe ";

// 8 clients, 3 per round, 4 local steps, 6 rounds on 30 skills7 records per task; `changes`
// replaces or adds options.
std::string federate_args(const std::string& out, const std::map<std::string, std::string>& changes = {}) {
  std::map<std::string, std::string> options = {
      {"model", MOPS_SOURCE_DIR "/models/skills7-base.safetensors"},
      {"tokenizer", MOPS_SOURCE_DIR "/models/skills7-tokenizer.model"},
      {"data", "skills7"}, {"skills7-per-task", "30"}, {"clients", "8"}, {"clients-per-round", "3"},
      {"local-steps", "4"}, {"batch-size", "2"}, {"rounds", "6"}, {"eval-every", "3"}, {"checkpoint-every", "2"},
      {"p0-steps", "2"}, {"gate-pretrain-steps", "5"}, {"experts", "4"}, {"prompts-per-expert", "2"},
      {"threads", "1"}, {"seed", "3"}, {"method", "mop"}, {"out", out}};
  for (const auto& [name, value] : changes) options[name] = value;
  std::string args = std::string(MOPS_BINARY) + " federate";
  for (const auto& [name, value] : options) args += " --" + name + (value.empty() ? "" : " " + value);
  return args;
}

Run mpirun(int ranks, const std::string& args) {
  return run_command(kMpirun + "-np " + std::to_string(ranks) + " " + args + " 2>&1");
}

// Largest |a - b| / max(|b|, 1e-12) over two datasets of the same shape.
double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(std::abs(b[i]), 1e-12));
  }
  return worst;
}

std::vector<double> as_doubles(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// Everything a run computes (not its timings): the final state and every metric series.
// What `method` trains, by its /state/ names, as federate_args configures it (E 4, P 2, LoRA on
// wq and wv of layers 2 and 3); "knn" is MoPs under --gate-route knn, with its task centroids.
std::vector<std::string> trained_state_names(const std::string& method) {
  if (method == "knn") return {"mid_prompts", "task_centroids"};
  if (method == "mop") return {"mid_prompts", "gate.w1.weight", "gate.w1.bias", "gate.w2.weight", "gate.w2.bias"};
  if (method == "lora") return {"layer2_wq_lora_a", "layer2_wq_lora_b", "layer3_wv_lora_a", "layer3_wv_lora_b"};
  if (method == "mpt") return {"mid_prompts", "mpt_task_rows", "mpt_task_columns"};
  if (method == "ia3") return {"layer2_ia3_keys", "layer3_ia3_values", "layer3_ia3_hidden"};
  if (method == "prefix") return {"layer2_prefix_keys", "layer3_prefix_values"};
  return {"mid_prompts"};  // fedprompt
}

// The largest relative difference of two runs of `method` over their series and states.
double max_result_difference(const std::string& a, const std::string& b, const std::string& method) {
  double worst = 0;
  std::vector<std::string> series = {"/fed/round", "/fed/ppl", "/fed/clients", "/fed/client_examples",
                                     "/fed/client_loss", "/fed/bytes_reduced", "/eval/ppl", "/eval/ppl_all",
                                     "/train/loss"};
  if (method == "mop" || method == "knn") series.insert(series.end(), {"/fed/client_gate", "/gate/by_task"});
  for (const auto& name : series) {
    const double d = max_relative_difference(read_dataset(a, name), read_dataset(b, name));
    EXPECT_LE(d, 1e-6) << name;
    worst = std::max(worst, d);
  }
  auto states = trained_state_names(method);
  states.push_back("first_prompts");
  for (const auto& name : states) {
    const double d = max_relative_difference(as_doubles(read_state(a, name, nullptr)), as_doubles(read_state(b, name, nullptr)));
    EXPECT_LE(d, 1e-6) << name;
    worst = std::max(worst, d);
  }
  return worst;
}

TEST(MpiFederate, SameResultsForOneTwoAndFourRanks) {
  const auto dir = fresh_test_dir("federate");
  for (int ranks : {1, 2, 4}) {
    const auto out = (dir / ("np" + std::to_string(ranks) + ".h5")).string();
    const auto run = mpirun(ranks, federate_args(out, {{"method", "both"}}));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    if (ranks == 1) {
      EXPECT_NE(run.output.find("FedPrompt"), std::string::npos) << run.output;
      EXPECT_NE(run.output.find("Gain (%)"), std::string::npos) << run.output;
    }
    for (const char* method : {"mop", "fedprompt"}) {
      const auto path = (dir / ("np" + std::to_string(ranks) + "." + method + ".h5")).string();
      const auto check = h5py_check(path);
      EXPECT_EQ(check.exit_code, 0) << check.output;
      EXPECT_NE(check.output.find("R=6 A=3"), std::string::npos) << check.output;
      EXPECT_EQ(read_string_attribute(path, "status"), "finished");
      if (ranks == 1) continue;
      const auto reference = (dir / (std::string("np1.") + method + ".h5")).string();
      const double worst = max_result_difference(path, reference, method);
      std::printf("%s, %d ranks vs 1: max relative difference %.3g\n", method, ranks, worst);
    }
  }
}

// FedAvg of LoRA's tensors (FedIT, with dropout: each client's masks from its own seed), IA3's
// vectors, the prefixes and MPT's shared prompts and task factors on 1 and 2 ranks: the same series and the same state, and
// exactly the trained values cross ranks.
// MoPs under --gate-route knn: the centroids rank 0 fits reach every rank with the start state, and
// 1 and 2 ranks give the same run.
TEST(MpiFederate, KnnRoutingIsTheSameOnOneAndTwoRanks) {
  const auto dir = fresh_test_dir("federate");
  for (int ranks : {1, 2}) {
    const auto run = mpirun(ranks, federate_args((dir / ("knn" + std::to_string(ranks) + ".h5")).string(),
                                                 {{"gate-route", "knn"}, {"gate-top-k", "1"}}));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_NE(run.output.find("--gate-route knn fitted 7 task centroids"), std::string::npos) << run.output;
  }
  EXPECT_EQ(max_result_difference((dir / "knn2.h5").string(), (dir / "knn1.h5").string(), "knn"), 0.0);
}

TEST(MpiFederate, PeerMethodsAreTheSameOnOneAndTwoRanks) {
  const auto dir = fresh_test_dir("federate");
  for (const std::string method : {"lora", "ia3", "prefix", "mpt"}) {
    SCOPED_TRACE(method);
    for (int ranks : {1, 2}) {
      const auto run = mpirun(ranks, federate_args((dir / (method + std::to_string(ranks) + ".h5")).string(),
                                                   {{"method", method}, {"lora-rank", "2"}, {"lora-dropout", "0.1"}}));
      ASSERT_EQ(run.exit_code, 0) << run.output;
      EXPECT_NE(run.output.find(peer_column_label(method)), std::string::npos) << run.output;
    }
    const auto one = (dir / (method + "1.h5")).string(), two = (dir / (method + "2.h5")).string();
    EXPECT_EQ(read_string_attribute(one, "method"), method);
    max_result_difference(two, one, method);
    // The byte audit: each round reduces the trained values, the example count and A = 3 slots of
    // [examples | loss] (no gate), in float64.
    const double trained = std::stod(read_string_attribute(one, "trainable_parameters"));
    EXPECT_EQ(read_dataset(two, "/fed/bytes_reduced"), std::vector<double>(6, 8 * (trained + 1 + 3 * 2)));
    for (const auto& name : trained_state_names(method)) {  // LoRA's B leaves 0, IA3's and MPT's vectors 1
      const bool at_one = name.find("mpt_") == 0 || name.find("_ia3_") != std::string::npos;
      const double start = name.find("_lora_b") != std::string::npos ? 0.0 : at_one ? 1.0 : NAN;
      const auto values = as_doubles(read_state(one, name, nullptr));
      if (!std::isnan(start)) {
        EXPECT_TRUE(std::any_of(values.begin(), values.end(), [&](double v) { return v != start; })) << name;
      }
    }
  }
}

// Only the FedAvg buffer crosses ranks each round, [state | examples | A x (E + 2) metrics] in
// float64, and nothing else crosses them but the start state and the config check.
TEST(MpiFederate, EachRoundReducesExactlyTheStateAndTheMetrics) {
  const auto dir = fresh_test_dir("federate");
  const auto out = (dir / "mop.h5").string();
  const auto run = mpirun(2, federate_args(out));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  // d = 128 (embedded base model), E = 4, P = 2, gate hidden 32, A = 3.
  const double state = 4 * 2 * 128 + (128 * 32 + 32) + (32 * 4 + 4);
  const double per_round = 8 * (state + 1 + 3 * (4 + 2));
  EXPECT_EQ(read_dataset(out, "/fed/bytes_reduced"), std::vector<double>(6, per_round));
  // Besides: the config check (8 bytes broadcast, 8 reduced), then from rank 0 the P0 count
  // (8), P0 (10 x 128 float32), the start round (8) and the start state (P0, mid prompts, gate).
  const double p0 = 10 * 128 * 4;
  const double broadcast = 8 + 8 + p0 + 8 + p0 + 4 * state;
  const std::string totals = "communicator: " + std::to_string(int64_t(8 + 6 * per_round)) + " bytes reduced, " +
                             std::to_string(int64_t(broadcast)) + " bytes broadcast";
  EXPECT_NE(run.output.find(totals), std::string::npos) << totals << "\n" << run.output;
}

// With 7 x 66 mid prompts only 49 tokens are left for an example, so tokenizing drops some of
// the 193 training records: the clients must share the examples that remain, no more.
TEST(MpiFederate, ClientsShareTheTokenizedExamplesWhenRecordsAreDropped) {
  const auto dir = fresh_test_dir("federate");
  const auto out = (dir / "drop.h5").string();
  const auto run = mpirun(2, federate_args(out, {{"experts", "7"}, {"prompts-per-expert", "66"}, {"rounds", "2"}}));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  ASSERT_NE(run.output.find("were dropped"), std::string::npos) << run.output;
  std::vector<int64_t> shape;
  const auto partition = read_dataset(out, "/fed/partition", &shape);  // (C, T)
  double total = 0;
  for (double n : partition) total += n;
  EXPECT_LT(total, 193);
  EXPECT_GT(total, 150);
  // Each active client trained on exactly its partition row.
  const auto clients = read_dataset(out, "/fed/clients"), examples = read_dataset(out, "/fed/client_examples");
  for (size_t i = 0; i < clients.size(); ++i) {
    double row = 0;
    for (int64_t t = 0; t < shape[1]; ++t) row += partition[size_t(clients[i]) * shape[1] + t];
    EXPECT_EQ(examples[i], row) << "client " << clients[i];
  }
}

pid_t spawn_shell(const std::string& command) {
  pid_t pid = 0;
  const std::string line = "exec " + command + " > /dev/null 2>&1";
  const char* argv[] = {"/bin/sh", "-c", line.c_str(), nullptr};
  EXPECT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  return pid;
}

// The checkpoint round the results file shows, 0 while there is none.
int checkpoint_round(const std::string& path) {
  try {
    return std::stoi(read_string_attribute(path, "checkpoint_round"));
  } catch (const std::exception&) {
    return 0;
  }
}

// A 12-round run of `method` on 2 ranks, one rank killed after a checkpoint, is a valid file with
// status running; --resume refuses a changed --lr and ends with the uninterrupted run's results.
void kill_a_rank_and_resume(const std::string& method) {
  const auto dir = fresh_test_dir("federate");
  const auto whole = (dir / "whole.h5").string(), killed = (dir / "killed.h5").string();
  const std::map<std::string, std::string> slow = {{"rounds", "12"}, {"local-steps", "12"}, {"method", method}};
  ASSERT_EQ(mpirun(2, federate_args(whole, slow)).exit_code, 0);

  const pid_t launcher = spawn_shell(kMpirun + "-np 2 " + federate_args(killed, slow));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (checkpoint_round(killed) < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto ranks = run_command("pgrep -P " + std::to_string(launcher)).output;
  ASSERT_FALSE(ranks.empty()) << "no rank processes under mpirun";
  const int victim = std::stoi(ranks.substr(ranks.rfind('\n', ranks.size() - 2) + 1));
  kill(victim, SIGKILL);
  int status = 0;
  waitpid(launcher, &status, 0);
  EXPECT_TRUE(!WIFEXITED(status) || WEXITSTATUS(status) != 0) << "mpirun should fail when a rank dies";
  const int saved = checkpoint_round(killed);
  ASSERT_GE(saved, 2);
  ASSERT_LT(saved, 12) << "the run finished before the kill; make it slower";
  EXPECT_EQ(read_string_attribute(killed, "status"), "running");
  const auto check = h5py_check(killed);
  EXPECT_EQ(check.exit_code, 0) << check.output;

  auto resume = slow;
  resume["resume"] = "";
  auto changed = resume;
  changed["lr"] = "0.01";
  const auto refused = mpirun(1, federate_args(killed, changed));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("--resume with a configuration that differs from the checkpoint's in --lr"),
            std::string::npos) << refused.output;
  const auto resumed = mpirun(2, federate_args(killed, resume));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming after round " + std::to_string(saved)), std::string::npos) << resumed.output;
  EXPECT_EQ(read_dataset(killed, "/fed/round").size(), 12u);
  const double worst = max_result_difference(killed, whole, method);
  std::printf("%s killed after checkpoint %d, resumed: max relative difference to the uninterrupted run %.3g\n",
              method.c_str(), saved, worst);
  EXPECT_EQ(worst, 0.0);
}

TEST(MpiFederate, AKilledRankStopsTheJobAndResumeEndsWithTheUninterruptedResult) { kill_a_rank_and_resume("mop"); }

TEST(MpiFederate, AKilledLoraRunResumesToTheUninterruptedResult) { kill_a_rank_and_resume("lora"); }

TEST(MpiFederate, ImpossiblePlacementsAndMismatchedConfigsAreClearErrors) {
  const auto dir = fresh_test_dir("federate");
  const auto out = (dir / "bad.h5").string();
  const auto too_many_ranks = mpirun(3, federate_args(out, {{"clients", "2"}, {"clients-per-round", "1"}}));
  EXPECT_NE(too_many_ranks.exit_code, 0);
  EXPECT_NE(too_many_ranks.output.find("--clients 2 is fewer than the 3 ranks"), std::string::npos)
      << too_many_ranks.output;
  const auto too_many_active = mpirun(1, federate_args(out, {{"clients-per-round", "9"}}));
  EXPECT_NE(too_many_active.exit_code, 0);
  EXPECT_NE(too_many_active.output.find("--clients-per-round"), std::string::npos) << too_many_active.output;
  EXPECT_NE(too_many_active.output.find("[1, 8]"), std::string::npos) << too_many_active.output;
  // Every client gets at least --min-client-examples (>= 1) records, or the partition says why not.
  const auto no_data = mpirun(1, federate_args(out, {{"clients", "400"}}));
  EXPECT_NE(no_data.exit_code, 0);
  EXPECT_NE(no_data.output.find("cannot give 400 clients at least 5 records each"), std::string::npos) << no_data.output;
  const auto mismatch = run_command(kMpirun + "-np 1 " + federate_args(out) + " : -np 1 " +
                                    federate_args(out, {{"lr", "0.5"}}) + " 2>&1");
  EXPECT_NE(mismatch.exit_code, 0);
  EXPECT_NE(mismatch.output.find("ranks started with options different from rank 0's"), std::string::npos)
      << mismatch.output;
}

// --- on a GPU (label gpu; skipped where none is visible) ---

// The final overall test perplexity of a results file.
double final_perplexity(const std::string& path) { return read_dataset(path, "/eval/ppl_all").back(); }

// On one GPU: 2 ranks sharing it (--comm mpi; NCCL allows one rank per GPU) and 1 rank with
// --comm nccl (the FedAvg sums reduced in device memory) against the CPU run. float32 on the GPU
// sums in other orders than on the CPU: final perplexity within 1e-3 relative; bfloat16 within 2 %.
// The same ranks and seed on the GPU give the same bits.
TEST(GpuFederate, MatchesTheCpuRunAndRepeatsBitForBit) {
  MOPS_NEEDS_GPU();
  const auto dir = fresh_test_dir("federate_gpu");
  auto run_to = [&](const std::string& name, int ranks, const std::map<std::string, std::string>& changes) {
    const auto out = (dir / (name + ".h5")).string();
    const auto run = mpirun(ranks, federate_args(out, changes));
    EXPECT_EQ(run.exit_code, 0) << run.output;
    return out;
  };
  const auto cpu = run_to("cpu", 1, {{"device", "cpu"}});
  const auto gpu2 = run_to("gpu-np2", 2, {{"device", "cuda"}, {"dtype", "float32"}, {"comm", "mpi"}});
  const auto again = run_to("gpu-np2-again", 2, {{"device", "cuda"}, {"dtype", "float32"}, {"comm", "mpi"}});
  const auto nccl = run_to("gpu-nccl", 1, {{"device", "cuda"}, {"dtype", "float32"}, {"comm", "nccl"}});
  const auto bf16 = run_to("gpu-bf16", 1, {{"device", "cuda"}, {"dtype", "bfloat16"}});
  const double reference = final_perplexity(cpu);
  std::printf("final perplexity: cpu %.5f, cuda np2 %.5f, cuda nccl %.5f, cuda bfloat16 %.5f\n", reference,
              final_perplexity(gpu2), final_perplexity(nccl), final_perplexity(bf16));
  EXPECT_NEAR(final_perplexity(gpu2) / reference, 1.0, 1e-3);
  EXPECT_NEAR(final_perplexity(nccl) / reference, 1.0, 1e-3);
  EXPECT_NEAR(final_perplexity(bf16) / reference, 1.0, 0.02);
  EXPECT_EQ(max_result_difference(gpu2, again, "mop"), 0.0);
}

}  // namespace
}  // namespace mops
