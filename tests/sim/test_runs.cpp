// Whole runs called as library code on the tiny model: the centralized run
// (src/prompts/centralized_run.h) and the federated run with its resume (sim/federated_run.h),
// their results files against what they return, and the comparison table they end with.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "centralized_run.h"
#include "checkpoint.h"
#include "comparison_table.h"
#include "federated_run.h"
#include "local_communicator.h"
#include "results_file.h"
#include "run_results.h"
#include "test_support.h"
#include "tiny_mops.h"

namespace mops {
namespace {

const std::vector<std::string> kTasks = {"a", "b", "c", "d"};

TokenizedSplit tiny_split() { return {kTasks, tiny_examples(32, 1), tiny_examples(12, 31)}; }

// P0 of 3 prompts, 4 experts of 2 prompts, 3 gate pretraining steps, 4 main-loop steps
// evaluated every 2, a 1 MiB activation cache.
PromptRunSettings tiny_run_settings() {
  PromptRunSettings s;
  s.p0.count = 3;
  s.p0.steps = 2;
  s.p0.batch_size = 4;
  s.mop = tiny_mop(PromptMethod::kMop);
  s.gate_pretrain_steps = 3;
  s.train.steps = 4;
  s.train.eval_every = 2;
  s.train.lr = 1e-2;
  s.train.batch_size = 2;
  s.train.eval_batch_size = 8;
  s.train.seed = 9;
  s.activation_cache = "1";
  s.seed = 9;
  s.config_json = R"({"command":"test","options":{"seed":"9","resume":"false"}})";
  return s;
}

// The report's perplexities are those of the file's last /eval row.
void expect_last_eval_row(const std::string& path, const EvaluationReport& report) {
  std::vector<int64_t> shape;
  const auto ppl = read_dataset(path, "/eval/ppl", &shape);  // (V, T)
  const auto all = read_dataset(path, "/eval/ppl_all");      // (V)
  ASSERT_FALSE(all.empty()) << path;
  ASSERT_EQ(report.tasks.size(), size_t(shape.at(1))) << path;
  EXPECT_EQ(report.overall.perplexity, all.back()) << path;
  for (size_t t = 0; t < report.tasks.size(); ++t)
    EXPECT_EQ(report.tasks[t].perplexity, ppl[(all.size() - 1) * report.tasks.size() + t]) << path << " task " << t;
}

TEST(RunResults, BothMethodsWriteOutWithTheirNameBeforeTheExtension) {
  const auto both = method_results_paths("dir/run.h5", "both", method_name);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0].method, PromptMethod::kPrompt);
  EXPECT_EQ(both[0].path, "dir/run.prompt.h5");
  EXPECT_EQ(both[1].method, PromptMethod::kMop);
  EXPECT_EQ(both[1].path, "dir/run.mop.h5");
  const auto one = method_results_paths("run.h5", "fedprompt", federated_method_name);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].method, PromptMethod::kPrompt);
  EXPECT_EQ(one[0].path, "run.h5");
  EXPECT_TRUE(method_results_paths("run.h5", "prompt", federated_method_name).empty());
}

TEST(CentralizedRun, BothMethodsReportTheLastEvaluationOfTheirFiles) {
  const auto dir = fresh_test_dir("runs");
  auto backbone = tiny_backbone();
  const auto dense_path = (dir / "dense.safetensors").string();
  save_model(backbone, dense_path);
  auto data = tiny_split();
  data.held_out = "validation";  // what the run reports its evaluations on
  const auto settings = tiny_run_settings();
  const auto outputs = method_results_paths((dir / "run.h5").string(), "both", method_name);
  const auto reports = run_centralized(backbone, settings, outputs, data, compression_attribute({}),
                                       DenseReference{dense_path, ComputeDevice{}});
  const auto* baseline = reports.outcome(PromptMethod::kPrompt);
  const auto* mop = reports.outcome(PromptMethod::kMop);
  ASSERT_TRUE(baseline && mop && reports.dense);
  EXPECT_EQ(reports.held_out, "validation");
  // The dense model here is the backbone itself.
  const auto direct = evaluate_perplexity(data.test, kTasks, 8, backbone_logits(backbone));
  EXPECT_DOUBLE_EQ(reports.dense->overall.perplexity, direct.overall.perplexity);
  EXPECT_NE(mop->final.overall.perplexity, baseline->final.overall.perplexity);
  for (const auto& [method, path] : outputs) {
    SCOPED_TRACE(path);
    EXPECT_EQ(read_string_attribute(path, "status"), "finished");
    EXPECT_EQ(read_string_attribute(path, "method"), method_name(method));
    EXPECT_EQ(read_string_attribute(path, "held_out_split"), "validation");
    EXPECT_EQ(read_string_attribute(path, "compression"), R"({"method":"none"})");
    EXPECT_EQ(read_dataset(path, "/eval/step"), (std::vector<double>{2, 4}));
    EXPECT_EQ(read_dataset(path, "/train/step").size(), 4u);
    const auto& outcome = *reports.outcome(method);
    expect_last_eval_row(path, outcome.final);
    const auto references = nlohmann::json::parse(read_string_attribute(path, "references"));
    EXPECT_EQ(references.at("p0_only").at("overall").get<double>(), reports.p0_only.overall.perplexity);
    EXPECT_EQ(references.at("dense").at("overall").get<double>(), reports.dense->overall.perplexity);
    EXPECT_EQ(references.at("start").at("overall").get<double>(), outcome.start);
    EXPECT_NE(outcome.start, outcome.final.overall.perplexity);
    const auto h5py = h5py_check(path);
    EXPECT_EQ(h5py.exit_code, 0) << h5py.output;
  }
  // Only MoPs pretrains a gate, and both start from the same P0.
  EXPECT_EQ(read_state(outputs[1].path, "gate_by_task_after_pretraining", nullptr).size(), 4u * 4u);
  EXPECT_EQ(read_state(outputs[0].path, "first_prompts", nullptr), read_state(outputs[1].path, "first_prompts", nullptr));
}

TEST(ComparisonTable, ShowsTheColumnsThatRanAndNaForATaskWithoutExamples) {
  auto report = [](double a, double all) {
    EvaluationReport r;
    r.tasks = {{"a", 3, 9, a}, {"b", 0, 0, std::nan("")}};
    r.overall = {"all", 3, 9, all};
    return r;
  };
  RunReports reports;
  reports.p0_only = report(4, 4);
  add_method_outcome(reports, PromptMethod::kPrompt, {report(2, 2)});
  add_method_outcome(reports, PromptMethod::kMop, {report(1.5, 1.5)});
  std::ostringstream both;
  print_comparison_table(both, "FedPrompt", reports);
  EXPECT_EQ(both.str(),
            "test perplexity (response tokens)\n"
            "  task                   P0 only FedPrompt      MoPs   Gain (%)\n"
            "  a                        4.000     2.000     1.500     +25.0\n"
            "  b                          n/a       n/a       n/a       n/a\n"
            "  all                      4.000     2.000     1.500     +25.0\n"
            "  note: b has no test examples, so no perplexity (n/a); more data (--samples-per-source, "
            "--skills7-per-task) or a larger --test-fraction gives it some\n");
  // A method above P0 alone: the note says where it started and which way training took it.
  reports.methods.clear();
  add_method_outcome(reports, PromptMethod::kPrompt, {report(5, 5), 6});
  add_method_outcome(reports, PromptMethod::kMop, {report(4.5, 4.5), 4.25});
  std::ostringstream worse;
  print_comparison_table(worse, "FedPrompt", reports);
  EXPECT_NE(worse.str().find("note: FedPrompt ends worse than P0 alone (5.000 against 4.000 overall). Its mid prompts "
                             "take P0's place from L_mid on, so before training it stood at 6.000, and training brought "
                             "it down, but not yet below P0 alone"),
            std::string::npos)
      << worse.str();
  EXPECT_NE(worse.str().find("note: MoPs ends worse than P0 alone (4.500 against 4.000 overall). Its mid prompts take "
                             "P0's place from L_mid on, so before training it stood at 4.250, and training raised it: "
                             "what it learned on the training records made the test split worse"),
            std::string::npos)
      << worse.str();
  reports.methods[1].second.start = std::nan("");
  std::ostringstream unknown;
  print_comparison_table(unknown, "FedPrompt", reports);
  EXPECT_NE(unknown.str().find("Where its training started is not in its results file"), std::string::npos);
  reports.methods = {{PromptMethod::kMop, {report(1.5, 1.5)}}};
  reports.dense = report(1.25, 1.25);
  reports.held_out = "validation";
  std::ostringstream mop_only;
  print_comparison_table(mop_only, "Baseline", reports);
  EXPECT_NE(mop_only.str().find("  task                     dense   P0 only      MoPs\n"), std::string::npos)
      << mop_only.str();
  EXPECT_EQ(mop_only.str().find("Gain"), std::string::npos);
  EXPECT_EQ(mop_only.str().rfind("validation perplexity (response tokens)\n", 0), 0u) << mop_only.str();
  // More methods than two: a gain column of MoPs against each of the others, (other - MoPs) / other.
  reports.methods = {{PromptMethod::kPrompt, {report(2, 2)}},
                     {PromptMethod::kMop, {report(1.5, 1.5)}},
                     {PromptMethod::kLora, {report(1.2, 1.2)}}};
  reports.dense.reset();
  std::ostringstream three;
  print_comparison_table(three, "Baseline", reports);
  EXPECT_NE(three.str().find("  task                   P0 only  Baseline      MoPs      LoRA   vs Baseline (%)   vs LoRA (%)\n"
                             "  a                        4.000     2.000     1.500     1.200            +25.0        -25.0\n"),
            std::string::npos)
      << three.str();
}

// A job whose allreduce fails at its `failing_call`-th use, as when a rank dies in that round.
class FailingCommunicator : public LocalCommunicator {
 public:
  explicit FailingCommunicator(int failing_call) : failing_call_(failing_call) {}

 protected:
  void do_allreduce_sum(double* values, size_t count) override {
    MOPS_CHECK(++calls_ != failing_call_, "allreduce " << calls_ << " failed on purpose");
    LocalCommunicator::do_allreduce_sum(values, count);
  }

 private:
  int failing_call_, calls_ = 0;
};

// 4 rounds of 2 of 4 clients, 2 local steps, evaluated and checkpointed every 2 rounds.
FederatedRunSettings tiny_federated_settings() {
  FederatedRunSettings f;
  f.rounds = 4;
  f.clients_per_round = 2;
  f.local_steps = 2;
  f.eval_every = 2;
  f.checkpoint_every = 2;
  f.partition.clients = 4;
  f.partition.alpha = 1.0;
  f.partition.min_examples = 2;
  f.partition.seed = 3;
  f.resume_free_options = {"resume"};
  return f;
}

void expect_same_dataset(const std::string& a, const std::string& b, const std::string& name) {
  EXPECT_EQ(read_dataset(a, name), read_dataset(b, name)) << name;
}

// FedPrompt runs its 4 rounds (allreduces 1-4), then MoPs fails in round 3 (allreduce 7),
// after its checkpoint at round 2. --resume reports FedPrompt's finished file and continues
// MoPs from round 3: both end as the run that was not interrupted.
TEST(FederatedRun, ResumedAfterAFailedRoundEndsAsTheUninterruptedRun) {
  const auto dir = fresh_test_dir("runs");
  auto backbone = tiny_backbone();
  const auto data = tiny_split();
  const auto prompts = tiny_run_settings();
  auto federated = tiny_federated_settings();
  const auto whole_outputs = method_results_paths((dir / "whole.h5").string(), "both", federated_method_name);
  const auto outputs = method_results_paths((dir / "killed.h5").string(), "both", federated_method_name);

  LocalCommunicator whole_comm;
  const auto whole = run_federated_methods(whole_comm, backbone, prompts, federated, whole_outputs, data, "{}");
  ASSERT_TRUE(whole.outcome(PromptMethod::kPrompt) && whole.outcome(PromptMethod::kMop));
  for (const auto& [method, path] : whole_outputs) expect_last_eval_row(path, whole.outcome(method)->final);

  FailingCommunicator failing(7);
  const auto error = error_of([&] { run_federated_methods(failing, backbone, prompts, federated, outputs, data, "{}"); });
  EXPECT_NE(error.find("allreduce 7 failed on purpose"), std::string::npos) << error;
  EXPECT_EQ(read_string_attribute(outputs[0].path, "status"), "finished");
  EXPECT_EQ(read_string_attribute(outputs[1].path, "status"), "running");
  EXPECT_EQ(read_string_attribute(outputs[1].path, "checkpoint_round"), "2");
  EXPECT_EQ(read_dataset(outputs[1].path, "/fed/round").size(), 2u);

  federated.resume = true;
  LocalCommunicator resume_comm;
  const auto resumed = run_federated_methods(resume_comm, backbone, prompts, federated, outputs, data, "{}");
  const auto* resumed_baseline = resumed.outcome(PromptMethod::kPrompt);
  const auto* resumed_mop = resumed.outcome(PromptMethod::kMop);
  const auto* whole_baseline = whole.outcome(PromptMethod::kPrompt);
  const auto* whole_mop = whole.outcome(PromptMethod::kMop);
  ASSERT_TRUE(resumed_baseline && resumed_mop && whole_baseline && whole_mop);
  EXPECT_EQ(resumed_baseline->final.overall.perplexity, whole_baseline->final.overall.perplexity);
  EXPECT_EQ(resumed_mop->final.overall.perplexity, whole_mop->final.overall.perplexity);
  // Where training started comes back from the files (the baseline had finished, MoPs resumes).
  EXPECT_EQ(resumed_baseline->start, whole_baseline->start);
  EXPECT_EQ(resumed_mop->start, whole_mop->start);
  EXPECT_TRUE(std::isfinite(whole_mop->start));
  for (size_t t = 0; t < kTasks.size(); ++t) {
    EXPECT_EQ(resumed_mop->final.tasks[t].perplexity, whole_mop->final.tasks[t].perplexity);
  }
  EXPECT_EQ(resumed.p0_only.overall.perplexity, whole.p0_only.overall.perplexity);
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto &a = outputs[i].path, &b = whole_outputs[i].path;
    SCOPED_TRACE(a);
    EXPECT_EQ(read_string_attribute(a, "status"), "finished");
    EXPECT_EQ(read_string_attribute(a, "checkpoint_round"), "4");
    for (const char* name : {"/eval/step", "/eval/ppl", "/train/loss", "/fed/round", "/fed/clients",
                             "/fed/client_examples", "/fed/client_loss", "/fed/partition"})
      expect_same_dataset(a, b, name);
    EXPECT_EQ(read_state(a, "mid_prompts", nullptr), read_state(b, "mid_prompts", nullptr));
    EXPECT_EQ(read_string_attribute(a, "references"), read_string_attribute(b, "references"));
  }
  EXPECT_EQ(read_state(outputs[1].path, "gate.w1.weight", nullptr), read_state(whole_outputs[1].path, "gate.w1.weight", nullptr));
  expect_same_dataset(outputs[1].path, whole_outputs[1].path, "/fed/client_gate");
  // The resumed run moved only MoPs' rounds 3 and 4.
  const auto bytes = read_dataset(outputs[1].path, "/fed/bytes_reduced");
  ASSERT_EQ(bytes.size(), 4u);
  EXPECT_EQ(double(resume_comm.bytes_reduced()), bytes[2] + bytes[3]);
}

}  // namespace
}  // namespace mops
