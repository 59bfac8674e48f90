// Tests for the HDF5 results file: every dataset and attribute of schema v1 read back with
// the C API, state round trips, clear errors on bad input, and crash safety: a writer
// killed with SIGKILL at random moments always leaves a valid, consistent file that the
// C API and plain h5py (tests/reference/check_results_file.py) open, also while it runs.
// Letters: S train rows, V evaluations, R rounds, T tasks, E experts, A active clients.
#include "results_file.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "build_info.h"
#include "build_paths.h"
#include "seeded_random.h"
#include "test_support.h"

namespace mops {
namespace {

constexpr int kTasks = 3, kExperts = 4, kClients = 2;

ResultsHeader mop_header(const std::string& mode) {
  ResultsHeader header;
  header.config_json = R"({"method": "mop", "steps": 10})";
  header.method = "mop";
  header.mode = mode;
  header.seed = 18446744073709551557ull;  // needs all 64 bits
  header.tasks = {"qa", "summarize", "classify"};
  header.experts = kExperts;
  header.prompts_per_expert = 5;
  header.active_clients = mode == "federated" ? kClients : 0;
  header.held_out = mode == "federated" ? "validation" : "test";
  return header;
}

// The values written at step s: ppl (T) = s + t, gate (T, E) = s + 0.01 (t E + e), gate
// entropy (T) = s + 0.5 t, experts used (T) = 1 + t, a train step's gate load (E) = s + 0.1 e and
// entropy s / 8; state (2, 3) = s + j (j the flat index).
std::vector<double> eval_ppl(int64_t step) { return {double(step), step + 1.0, step + 2.0}; }

GateEvaluation eval_gate(int64_t step) {
  GateEvaluation gate;
  for (int i = 0; i < kTasks * kExperts; ++i) gate.by_task.push_back(step + 0.01 * i);
  for (int t = 0; t < kTasks; ++t) {
    gate.entropy.push_back(step + 0.5 * t);
    gate.experts_used.push_back(1 + t);
  }
  return gate;
}

GateStep train_gate(int64_t step) {
  GateStep gate{{}, step / 8.0};
  for (int e = 0; e < kExperts; ++e) gate.load.push_back(step + 0.1 * e);
  return gate;
}

// Round r: clients {r, r + 7}, gate 0.125 r, examples {100 + r, 200}, losses {r, r + 1}.
RoundRecord fed_round(int64_t round) {
  RoundRecord r;
  r.round = round;
  r.ppl = eval_ppl(round);
  r.clients = {round, round + 7};
  r.client_gate = std::vector<double>(kClients * kExperts, 0.125 * round);
  r.client_examples = {100 + round, 200};
  r.client_loss = {double(round), round + 1.0};
  r.bytes_reduced = 1e6 * round;
  r.round_seconds = 0.5 * round;
  r.comm_seconds = 0.25 * round;
  r.wait_seconds = 0.125 * round;
  return r;
}

std::vector<float> state_values(int64_t step) {
  std::vector<float> values;
  for (int j = 0; j < 6; ++j) values.push_back(float(step + j));
  return values;
}

uint64_t read_seed(const std::string& path) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t attribute = H5Aopen(file, "seed", H5P_DEFAULT);
  uint64_t seed = 0;
  EXPECT_GE(H5Aread(attribute, H5T_NATIVE_UINT64, &seed), 0);
  H5Aclose(attribute);
  H5Fclose(file);
  return seed;
}

bool has_object(const std::string& path, const std::string& name) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const bool found = H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0;
  H5Fclose(file);
  return found;
}

std::vector<int64_t> shape_of(const std::string& path, const std::string& name) {
  std::vector<int64_t> shape;
  read_dataset(path, name, &shape);
  return shape;
}

TEST(ResultsFile, WritesEveryDatasetAndAttributeOfTheSchema) {
  const std::string path = (fresh_test_dir("results") / "run.h5").string();
  {
    ResultsFile results(path, mop_header("federated"));
    for (int64_t step = 1; step <= 4; ++step) results.append_train(step, 1.0 / step);
    results.append_eval(2, eval_ppl(2), 2.5, eval_gate(2));
    results.append_eval(4, eval_ppl(4), 4.5, eval_gate(4));
    // On disk at once, with the train rows before it:
    EXPECT_EQ(read_dataset(path, "/eval/step"), (std::vector<double>{2, 4}));
    EXPECT_EQ(read_dataset(path, "/train/step").size(), 4u);
    for (int64_t round = 0; round < 3; ++round)
      results.append_round(fed_round(round));
    results.write_table("partition", {5, 0, 1, 2, 3, 4}, {2, kTasks});
    results.write_attribute("status", "finished");
    results.close();
  }
  EXPECT_EQ(read_string_attribute(path, "schema"), "mops-results/1");
  EXPECT_EQ(read_string_attribute(path, "config"), R"({"method": "mop", "steps": 10})");
  EXPECT_EQ(read_string_attribute(path, "method"), "mop");
  EXPECT_EQ(read_string_attribute(path, "mode"), "federated");
  EXPECT_EQ(read_string_attribute(path, "held_out_split"), "validation");
  EXPECT_EQ(read_string_attribute(path, "git_commit"), source_git_commit());
  EXPECT_EQ(read_string_attribute(path, "status"), "finished");
  EXPECT_EQ(read_seed(path), 18446744073709551557ull);
  EXPECT_EQ(read_strings(path, "/tasks"), (std::vector<std::string>{"qa", "summarize", "classify"}));
  EXPECT_EQ(read_dataset(path, "/experts"), (std::vector<double>{kExperts, 5}));

  EXPECT_EQ(read_dataset(path, "/train/step"), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(read_dataset(path, "/train/loss"), (std::vector<double>{1, 0.5, 1 / 3.0, 0.25}));
  EXPECT_EQ(read_dataset(path, "/eval/step"), (std::vector<double>{2, 4}));
  EXPECT_EQ(shape_of(path, "/eval/ppl"), (std::vector<int64_t>{2, kTasks}));
  EXPECT_EQ(read_dataset(path, "/eval/ppl"), (std::vector<double>{2, 3, 4, 4, 5, 6}));
  EXPECT_EQ(read_dataset(path, "/eval/ppl_all"), (std::vector<double>{2.5, 4.5}));
  std::vector<int64_t> gate_shape;
  const auto gate = read_dataset(path, "/gate/by_task", &gate_shape);  // (V, T, E)
  EXPECT_EQ(gate_shape, (std::vector<int64_t>{2, kTasks, kExperts}));
  EXPECT_DOUBLE_EQ(gate[1 * kTasks * kExperts + 2 * kExperts + 3], 4 + 0.01 * 11);
  EXPECT_EQ(shape_of(path, "/gate/entropy"), (std::vector<int64_t>{2, kTasks}));
  EXPECT_EQ(read_dataset(path, "/gate/entropy"), (std::vector<double>{2, 2.5, 3, 4, 4.5, 5}));
  EXPECT_EQ(read_dataset(path, "/gate/experts_used"), (std::vector<double>{1, 2, 3, 1, 2, 3}));
  EXPECT_FALSE(has_object(path, "/train/gate_load")) << "a federated file has no per-step gate rows";

  EXPECT_EQ(read_dataset(path, "/fed/round"), (std::vector<double>{0, 1, 2}));
  EXPECT_EQ(shape_of(path, "/fed/ppl"), (std::vector<int64_t>{3, kTasks}));
  EXPECT_EQ(read_dataset(path, "/fed/clients"), (std::vector<double>{0, 7, 1, 8, 2, 9}));
  std::vector<int64_t> client_gate_shape;
  const auto client_gate = read_dataset(path, "/fed/client_gate", &client_gate_shape);  // (R, A, E)
  EXPECT_EQ(client_gate_shape, (std::vector<int64_t>{3, kClients, kExperts}));
  EXPECT_EQ(client_gate.back(), 0.25);
  EXPECT_EQ(read_dataset(path, "/fed/client_examples"),
            (std::vector<double>{100, 200, 101, 200, 102, 200}));
  EXPECT_EQ(read_dataset(path, "/fed/bytes_reduced"), (std::vector<double>{0, 1e6, 2e6}));
  EXPECT_EQ(read_dataset(path, "/fed/round_seconds"), (std::vector<double>{0, 0.5, 1}));
  EXPECT_EQ(read_dataset(path, "/fed/comm_seconds"), (std::vector<double>{0, 0.25, 0.5}));
  EXPECT_EQ(read_dataset(path, "/fed/wait_seconds"), (std::vector<double>{0, 0.125, 0.25}));
  EXPECT_EQ(read_dataset(path, "/fed/client_loss"), (std::vector<double>{0, 1, 1, 2, 2, 3}));
  std::vector<int64_t> partition_shape;
  EXPECT_EQ(read_dataset(path, "/fed/partition", &partition_shape), (std::vector<double>{5, 0, 1, 2, 3, 4}));
  EXPECT_EQ(partition_shape, (std::vector<int64_t>{2, kTasks}));

  const auto check = h5py_check(path);
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("S=4 V=2 R=3 A=2"), std::string::npos) << check.output;
}

TEST(ResultsFile, PromptRunHasNoGateAndCentralizedRunNoFedGroup) {
  const std::string path = (fresh_test_dir("results") / "prompt.h5").string();
  ResultsHeader header = mop_header("centralized");
  header.method = "prompt";
  header.experts = 1;
  ResultsFile results(path, header);
  results.append_eval(0, eval_ppl(0), 1.0);
  results.append_train(1, 0.5);
  EXPECT_EQ(shape_of(path, "/eval/ppl"), (std::vector<int64_t>{1, kTasks}));
  EXPECT_FALSE(has_object(path, "/gate"));
  EXPECT_FALSE(has_object(path, "/train/gate_load"));
  EXPECT_FALSE(has_object(path, "/fed"));
  const auto check = h5py_check(path);
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST(ResultsFile, TrainRowsPendingAtCloseAreWritten) {
  const std::string path = (fresh_test_dir("results") / "train.h5").string();
  {
    ResultsFile results(path, mop_header("centralized"));
    for (int64_t step = 0; step < 3; ++step) results.append_train(step, 1.0, train_gate(step));
  }  // the destructor writes the rows (append_train writes at most once a second)
  EXPECT_EQ(read_dataset(path, "/train/step"), (std::vector<double>{0, 1, 2}));
  EXPECT_EQ(shape_of(path, "/train/gate_load"), (std::vector<int64_t>{3, kExperts}));
  EXPECT_DOUBLE_EQ(read_dataset(path, "/train/gate_load").back(), 2 + 0.1 * (kExperts - 1));
  EXPECT_EQ(read_dataset(path, "/train/gate_entropy"), (std::vector<double>{0, 0.125, 0.25}));
}

TEST(ResultsFile, StateRoundTripAndReplace) {
  const std::string path = (fresh_test_dir("results") / "state.h5").string();
  ResultsFile results(path, mop_header("centralized"));
  std::vector<float> prompts(kExperts * 5 * 8);  // (E, P, C)
  for (size_t i = 0; i < prompts.size(); ++i) prompts[i] = 0.5f * i - 7.f;
  results.write_state("prompts", prompts, {kExperts, 5, 8});
  results.write_state("gate/bias", {0.25f}, {});
  std::vector<int64_t> shape;
  EXPECT_EQ(read_state(path, "prompts", &shape), prompts);
  EXPECT_EQ(shape, (std::vector<int64_t>{kExperts, 5, 8}));
  EXPECT_EQ(read_state(path, "gate/bias", &shape), std::vector<float>{0.25f});
  EXPECT_TRUE(shape.empty());

  results.write_state("prompts", state_values(3), {2, 3});
  EXPECT_EQ(read_state(path, "prompts", &shape), state_values(3));
  EXPECT_EQ(shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(read_state(path, "gate/bias", &shape), std::vector<float>{0.25f});
}

TEST(ResultsFile, BadInputGivesClearErrors) {
  const auto dir = fresh_test_dir("results");
  const std::string path = (dir / "bad.h5").string();
  ResultsFile results(path, mop_header("centralized"));
  EXPECT_NE(error_of([&] { results.append_eval(0, {1, 2}, 1, eval_gate(0)); })
                .find("ppl_per_task has 2 values, expected 3 (one per task)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { results.append_eval(0, eval_ppl(0), 1, GateEvaluation{{0.5}, {}, {}}); })
                .find("gate_by_task has 1 values, expected 12 (tasks x experts)"),
            std::string::npos);
  auto no_entropy = eval_gate(0);
  no_entropy.entropy.pop_back();
  EXPECT_NE(error_of([&] { results.append_eval(0, eval_ppl(0), 1, no_entropy); })
                .find("gate entropy has 2 values, expected 3 (one per task)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { results.append_train(0, 1); }).find("gate load has 0 values, expected 4 (one per expert)"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              results.append_round(fed_round(0));
            }).find("append_round in a centralized run"),
            std::string::npos);
  EXPECT_NE(error_of([&] { results.write_state("prompts", {1, 2, 3}, {2, 2}); })
                .find("has 3 values, expected 4 (the product of its shape)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { results.write_attribute("schema", "other"); }).find("belongs to the schema"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_dataset(path, "/eval/missing"); })
                .find(path + ": HDF5 cannot open dataset '/eval/missing'"),
            std::string::npos);
  results.close();
  EXPECT_NE(error_of([&] { results.append_train(0, 1, train_gate(0)); }).find("append_train after close()"),
            std::string::npos);

  ResultsHeader prompt = mop_header("centralized");
  prompt.method = "prompt";
  ResultsFile prompt_results((dir / "prompt.h5").string(), prompt);
  EXPECT_NE(error_of([&] { prompt_results.append_eval(0, eval_ppl(0), 1, GateEvaluation{{0.5}, {}, {}}); })
                .find("expected 0 (no gate for this method)"),
            std::string::npos);

  ResultsHeader federated = mop_header("federated");
  federated.active_clients = 0;
  EXPECT_NE(error_of([&] { ResultsFile unused((dir / "fed.h5").string(), federated); })
                .find("mode federated with 0 active clients"),
            std::string::npos);
  ResultsFile fed_results((dir / "fed.h5").string(), mop_header("federated"));
  auto one_client = fed_round(0);
  one_client.clients = {1};
  EXPECT_NE(error_of([&] { fed_results.append_round(one_client); })
                .find("clients has 1 values, expected 2 (active clients)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { results.write_table("partition", {1}, {1}); }).find("write_table after close()"),
            std::string::npos);

  const std::string nowhere = (dir / "missing-dir" / "run.h5").string();
  const std::string error =
      error_of([&] { ResultsFile unused(nowhere, mop_header("centralized")); });
  EXPECT_EQ(error.rfind(nowhere + ": cannot create", 0), 0u) << error;
  EXPECT_NE(error.find("No such file or directory"), std::string::npos) << error;
}

TEST(ResultsFile, H5pyCheckRejectsAFileWithoutTheSchema) {
  const std::string path = (fresh_test_dir("results") / "plain.h5").string();
  H5Fclose(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  const auto check = h5py_check(path);
  EXPECT_EQ(check.exit_code, 1) << check.output;
  EXPECT_NE(check.output.find("missing root attribute 'schema'"), std::string::npos) << check.output;
}

// The child's loop: a train row every iteration, an evaluation every 5th, state every 10th.
[[noreturn]] void write_until_killed(const std::string& path, int ready_fd) {
  try {
    ResultsFile results(path, mop_header("centralized"));
    const char ready = 1;
    if (write(ready_fd, &ready, 1) != 1) _exit(2);
    for (int64_t step = 0;; ++step) {
      results.append_train(step, 0.5 * step, train_gate(step));
      if (step % 5 == 0) results.append_eval(step, eval_ppl(step), step + 0.25, eval_gate(step));
      if (step % 10 == 0) results.write_state("prompts", state_values(step), {2, 3});
    }
  } catch (...) {
    _exit(3);
  }
}

// Checks that the file holds a consistent prefix of what write_until_killed writes.
void expect_consistent_prefix(const std::string& path) {
  const auto steps = read_dataset(path, "/train/step"), losses = read_dataset(path, "/train/loss");
  ASSERT_EQ(steps.size(), losses.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    ASSERT_EQ(steps[i], i);
    ASSERT_EQ(losses[i], 0.5 * i);
  }
  const auto eval_steps = read_dataset(path, "/eval/step"), ppl = read_dataset(path, "/eval/ppl");
  const auto ppl_all = read_dataset(path, "/eval/ppl_all"), gate = read_dataset(path, "/gate/by_task");
  const size_t V = eval_steps.size();
  ASSERT_EQ(ppl.size(), V * kTasks);
  ASSERT_EQ(ppl_all.size(), V);
  ASSERT_EQ(gate.size(), V * kTasks * kExperts);
  for (size_t v = 0; v < V; ++v) {
    const int64_t step = 5 * v;
    ASSERT_EQ(eval_steps[v], step);
    ASSERT_EQ(std::vector<double>(ppl.begin() + v * kTasks, ppl.begin() + (v + 1) * kTasks),
              eval_ppl(step));
    ASSERT_EQ(ppl_all[v], step + 0.25);
    ASSERT_EQ(gate[(v + 1) * kTasks * kExperts - 1], eval_gate(step).by_task.back());
  }
  if (V == 0) return;
  const int64_t last_eval = 5 * (V - 1);
  EXPECT_GT(static_cast<int64_t>(steps.size()), last_eval);  // train rows go with each snapshot
  if (V == 1 && !has_object(path, "/state")) return;         // killed before the first state
  std::vector<int64_t> shape;
  const auto state = read_state(path, "prompts", &shape);
  ASSERT_EQ(shape, (std::vector<int64_t>{2, 3}));
  const int64_t state_step = static_cast<int64_t>(state[0]);
  EXPECT_EQ(state_step % 10, 0);
  EXPECT_GE(state_step, last_eval - 10);
  EXPECT_LE(state_step, last_eval);
  EXPECT_EQ(state, state_values(state_step));
}

TEST(ResultsFile, SurvivesSigkillAtAnyMoment) {
  const std::string path = (fresh_test_dir("results") / "killed.h5").string();
  SeededRandom random(2024);  // the kill delays, in ms
  for (int kill_number = 0; kill_number < 10; ++kill_number) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(ready[0]);
      write_until_killed(path, ready[1]);
    }
    ::close(ready[1]);
    char byte = 0;
    ASSERT_EQ(read(ready[0], &byte, 1), 1) << "the writer died before creating the file";
    ::close(ready[0]);
    const int delay = random.between(5, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    const bool live_read = kill_number % 3 == 0;  // a reader while the writer runs ("live view")
    if (live_read) {
      const auto live = h5py_check(path);
      EXPECT_EQ(live.exit_code, 0) << "live file: " << live.output;
    }
    ASSERT_EQ(kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped by itself, status " << status;

    SCOPED_TRACE("kill " + std::to_string(kill_number) + " after " + std::to_string(delay) + " ms");
    expect_consistent_prefix(path);
    std::printf("kill %d after %3d ms%s: S = %zu train rows, V = %zu evaluations\n",
                kill_number, delay, live_read ? " and a live h5py read" : "",
                read_dataset(path, "/train/step").size(), read_dataset(path, "/eval/step").size());
    const auto check = h5py_check(path);
    EXPECT_EQ(check.exit_code, 0) << check.output;
  }
}

}  // namespace
}  // namespace mops
