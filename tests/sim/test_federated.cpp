// The federated simulation in one process: placement and sampling, FedAvg against a hand
// calculation, the round loop's bytes and records, and independence from how clients are
// grouped. The multi-rank runs (mpirun) are in test_federate_mpi.cpp.
#include <gtest/gtest.h>

#include <set>

#include "client_schedule.h"
#include "communicator.h"
#include "fedavg.h"
#include "federated_resume.h"
#include "federated_training.h"
#include "test_support.h"
#include "tiny_mops.h"

namespace mops {
namespace {

// --resume compares the resolved options: equal ones pass, a changed one is named, and an option
// the checkpoint's mops did not have yet passes only at its default.
TEST(FederatedResume, AConfigurationMayGainOptionsAtTheirDefaultsOnly) {
  const std::string stored = R"({"command":"federate","options":{"lr":"0.001","out":"a.h5"},"defaults":["lr"]})";
  auto current = [](const std::string& options, const std::string& defaults) {
    return R"({"command":"federate","options":{)" + options + R"(},"defaults":[)" + defaults + "]}";
  };
  EXPECT_NO_THROW(check_resume_config("a.h5", stored, current(R"("lr":"0.001","out":"b.h5")", R"("lr")"), {"out"}));
  EXPECT_NO_THROW(check_resume_config("a.h5", stored, current(R"("lr":"0.001","out":"a.h5","gate-top-k":"0")",
                                                              R"("lr","gate-top-k")"), {}));
  const auto added = error_of([&] {
    check_resume_config("a.h5", stored, current(R"("lr":"0.001","out":"a.h5","gate-top-k":"2")", R"("lr")"), {});
  });
  EXPECT_NE(added.find("differs from the checkpoint's in --gate-top-k;"), std::string::npos) << added;
  const auto changed = error_of([&] {
    check_resume_config("a.h5", stored, current(R"("lr":"0.01","out":"a.h5")", ""), {});
  });
  EXPECT_NE(changed.find("in --lr;"), std::string::npos) << changed;
  const auto dropped = error_of([&] { check_resume_config("a.h5", stored, current(R"("lr":"0.001")", R"("lr")"), {}); });
  EXPECT_NE(dropped.find("in --out;"), std::string::npos) << dropped;
}

TEST(ClientSchedule, EveryClientHasExactlyOneRank) {
  for (int ranks = 1; ranks <= 5; ++ranks) {
    std::vector<int> seen(17, 0);
    for (int r = 0; r < ranks; ++r) {
      for (int c : clients_of_rank(r, ranks, 17)) {
        EXPECT_EQ(owner_rank(c, ranks), r);
        seen[c] += 1;
      }
    }
    EXPECT_EQ(seen, std::vector<int>(17, 1)) << ranks << " ranks";
  }
}

TEST(ClientSchedule, ActiveClientsAreADistinctSeededSample) {
  const auto a = active_clients(100, 10, 7, 3);
  EXPECT_EQ(a, active_clients(100, 10, 7, 3));
  EXPECT_NE(a, active_clients(100, 10, 7, 4));
  EXPECT_NE(a, active_clients(100, 10, 8, 3));
  EXPECT_EQ(std::set<int>(a.begin(), a.end()).size(), 10u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(active_clients(5, 5, 1, 1), (std::vector<int>{0, 1, 2, 3, 4}));
  // Over many rounds every client is drawn about equally often (10 % each).
  std::vector<int> counts(100, 0);
  for (int round = 1; round <= 1000; ++round)
    for (int c : active_clients(100, 10, 1, round)) counts[c] += 1;
  EXPECT_GT(*std::min_element(counts.begin(), counts.end()), 60);
  EXPECT_LT(*std::max_element(counts.begin(), counts.end()), 140);
  EXPECT_NE(error_of([] { active_clients(5, 6, 1, 1); }).find("--clients-per-round 6 is outside [1, 5]"),
            std::string::npos);
  EXPECT_NE(client_round_seed(1, 2, 3), client_round_seed(1, 3, 2));
}

// Client states filled with constants: FedAvg of 1 (1 example) and 3 (3 examples) is 2.5.
TEST(FedAvg, IsTheExampleWeightedMeanSplitOverAnyBuffers) {
  const auto config = tiny_mop(PromptMethod::kMop);
  PromptState a(config, tiny_config(), 1), b(config, tiny_config(), 2), global(config, tiny_config(), 3);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : a->parameters()) p.fill_(1.0);
    for (auto& p : b->parameters()) p.fill_(3.0);
  }
  const int64_t n = averaged_values(global);
  EXPECT_EQ(n, global->mid_prompts.numel() + 16 * 8 + 8 + 8 * 4 + 4);  // prompts + gate (C=16, hidden 8, E=4)
  auto zeros = [&] { return torch::zeros({n + 1}, torch::kDouble); };
  auto one = zeros(), first = zeros(), second = zeros();
  add_client(a, 1, one);
  add_client(b, 3, one);
  add_client(a, 1, first);   // "rank 0"
  add_client(b, 3, second);  // "rank 1"
  first += second;
  EXPECT_TRUE(torch::equal(one, first));
  assign_average(one, global);
  EXPECT_TRUE(global->mid_prompts.eq(2.5).all().item<bool>());
  for (auto& p : global->gate->parameters()) EXPECT_TRUE(p.eq(2.5).all().item<bool>());
  auto empty = zeros();
  EXPECT_NE(error_of([&] { assign_average(empty, global); }).find("sum of example counts is 0"),
            std::string::npos);
}

struct RecordingObserver : RoundObserver {
  void on_round(const RoundOutcome& outcome, PromptState&) override {
    records.push_back(outcome.record);
    evaluated.push_back(outcome.evaluation != nullptr);
    checkpoints.push_back(outcome.checkpoint);
  }
  std::vector<RoundRecord> records;
  std::vector<bool> evaluated, checkpoints;
};

std::vector<ClientData> tiny_clients(int count) {
  std::vector<ClientData> clients;
  for (int c = 0; c < count; ++c) clients.push_back({c, tiny_examples(size_t(4 + 2 * c), 100 + c)});
  return clients;
}

FederatedOptions tiny_federation() {
  FederatedOptions o;
  o.rounds = 4;
  o.clients_per_round = 3;
  o.local.steps = 3;
  o.local.lr = 1e-2;
  o.local.batch_size = 2;
  o.local.eval_batch_size = 8;
  o.eval_every = 2;
  o.checkpoint_every = 3;
  o.seed = 5;
  return o;
}

TEST(FederatedTraining, RoundsMoveOnlyTheStateAndMetricsAndRecordEveryClient) {
  auto backbone = tiny_backbone();
  auto global = random_state(tiny_mop(PromptMethod::kMop), 30);
  const auto start = global->mid_prompts.detach().clone();
  auto comm = make_communicator("local");
  RecordingObserver observer;
  const auto options = tiny_federation();
  run_federated(backbone, global, tiny_clients(6), 6, tiny_examples(8, 31), {"a", "b", "c", "d"}, options, 1, *comm,
                observer);
  ASSERT_EQ(observer.records.size(), 4u);
  EXPECT_EQ(observer.evaluated, (std::vector<bool>{false, true, false, true}));
  EXPECT_EQ(observer.checkpoints, (std::vector<bool>{false, false, true, true}));
  // One allreduce per round of [state (N) | examples (1) | A x (E + 2)] float64 values.
  const double per_round = 8.0 * double(averaged_values(global) + 1 + 3 * (4 + 2));
  for (const auto& r : observer.records) {
    EXPECT_EQ(r.bytes_reduced, per_round);
    const auto active = active_clients(6, 3, 5, int(r.round));
    EXPECT_EQ(r.clients, std::vector<int64_t>(active.begin(), active.end()));
    for (size_t a = 0; a < 3; ++a) {
      EXPECT_EQ(r.client_examples[a], 4 + 2 * r.clients[a]);
      double gate_sum = 0;
      for (int e = 0; e < 4; ++e) gate_sum += r.client_gate[a * 4 + e];
      EXPECT_NEAR(gate_sum, 1.0, 1e-6);  // float32 softmax rows, averaged in float64
      EXPECT_GT(r.client_loss[a], 0);
    }
  }
  EXPECT_TRUE(std::isnan(observer.records[0].ppl[0]));
  EXPECT_FALSE(std::isnan(observer.records[1].ppl[0]));
  EXPECT_EQ(comm->bytes_reduced(), uint64_t(4 * per_round));
  EXPECT_FALSE(global->mid_prompts.equal(start));
}

// Resuming after round 2 from the state then gives the same state as 4 rounds in one go.
TEST(FederatedTraining, ResumingFromARoundGivesTheUninterruptedResult) {
  auto backbone = tiny_backbone();
  const auto clients = tiny_clients(6);
  const auto test = tiny_examples(8, 31);
  auto comm = make_communicator("local");
  auto options = tiny_federation();
  auto whole = random_state(tiny_mop(PromptMethod::kMop), 30);
  RecordingObserver unused;
  run_federated(backbone, whole, clients, 6, test, {"a", "b", "c", "d"}, options, 1, *comm, unused);

  auto resumed = random_state(tiny_mop(PromptMethod::kMop), 30);
  options.rounds = 2;
  run_federated(backbone, resumed, clients, 6, test, {"a", "b", "c", "d"}, options, 1, *comm, unused);
  options.rounds = 4;
  run_federated(backbone, resumed, clients, 6, test, {"a", "b", "c", "d"}, options, 3, *comm, unused);
  EXPECT_TRUE(resumed->mid_prompts.equal(whole->mid_prompts));
  EXPECT_TRUE(resumed->gate->parameters()[0].equal(whole->gate->parameters()[0]));
}

TEST(FederatedTraining, FedPromptHasNoGateSlots) {
  auto backbone = tiny_backbone();
  auto global = random_state(tiny_mop(PromptMethod::kPrompt), 32);
  auto comm = make_communicator("local");
  RecordingObserver observer;
  auto options = tiny_federation();
  options.rounds = 1;
  run_federated(backbone, global, tiny_clients(4), 4, tiny_examples(8, 33), {"a", "b", "c", "d"}, options, 1, *comm,
                observer);
  EXPECT_TRUE(observer.records[0].client_gate.empty());
  EXPECT_EQ(observer.records[0].bytes_reduced, 8.0 * double(global->mid_prompts.numel() + 1 + 3 * 2));
}

}  // namespace
}  // namespace mops
