// Multitask prompt tuning (MPT, issue 18): example i of task t sees the shared mid prompts times
// u_t v_t^T; with unit factors that is the prompt baseline; gradients reach the shared prompts and
// the factors of the batch's tasks only; the task id is checked.
#include <gtest/gtest.h>

#include "prompt_state_io.h"
#include "prompted_forward.h"
#include "test_support.h"
#include "tiny_mops.h"

namespace mops {
namespace {

// An MPT state and a prompt-baseline state with the same P0 and shared prompts.
std::pair<PromptState, PromptState> mpt_and_baseline(uint64_t seed) {
  auto mpt = random_state(tiny_mop(PromptMethod::kMpt), seed);
  auto baseline = random_state(tiny_mop(PromptMethod::kPrompt), seed);
  torch::NoGradGuard no_grad;
  baseline->first_prompts.copy_(mpt->first_prompts);
  baseline->mid_prompts.copy_(mpt->mid_prompts);
  return {mpt, baseline};
}

TEST(MultitaskPrompts, UnitTaskFactorsAreThePromptBaseline) {
  auto backbone = tiny_backbone();
  auto [mpt, baseline] = mpt_and_baseline(61);
  const auto batch = make_batch(tiny_examples(8, 62), 0, 8);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(prompted_forward(backbone, mpt, batch).logits.equal(prompted_forward(backbone, baseline, batch).logits));
}

// With random factors, each example's logits are those of the baseline whose mid prompts are its
// task's P* o (u_t v_t^T), written out element by element here.
TEST(MultitaskPrompts, EachExampleSeesItsTasksRankOnePrompts) {
  auto backbone = tiny_backbone();
  auto [mpt, baseline] = mpt_and_baseline(63);
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(64);
  mpt->task_rows.copy_(torch::randn(mpt->task_rows.sizes(), gen));
  mpt->task_columns.copy_(torch::randn(mpt->task_columns.sizes(), gen));
  const auto examples = tiny_examples(8, 65);
  const auto ours = prompted_forward(backbone, mpt, make_batch(examples, 0, 8)).logits;  // (8, T, V)
  const auto shared = mpt->mid_prompts.accessor<float, 2>();
  for (size_t i = 0; i < examples.size(); ++i) {
    const int t = examples[i].task;
    auto prompts = torch::empty_like(mpt->mid_prompts);  // (E * P, C)
    auto out = prompts.accessor<float, 2>();
    for (int64_t n = 0; n < prompts.size(0); ++n) {
      for (int64_t c = 0; c < prompts.size(1); ++c) {
        out[n][c] = shared[n][c] * mpt->task_rows[t][n].item<float>() * mpt->task_columns[t][c].item<float>();
      }
    }
    baseline->mid_prompts.copy_(prompts);
    const auto reference = prompted_forward(backbone, baseline, make_batch(examples, i, i + 1)).logits;  // (1, T, V)
    EXPECT_TRUE(ours.slice(0, int64_t(i), int64_t(i) + 1).allclose(reference, 0, 1e-5))
        << "example " << i << ": " << (ours.slice(0, int64_t(i), int64_t(i) + 1) - reference).abs().max();
  }
}

TEST(MultitaskPrompts, GradientsReachTheSharedPromptsAndTheBatchsTasksOnly) {
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kMpt), 66);
  auto examples = tiny_examples(8, 67);
  std::vector<TokenizedExample> tasks_0_and_2;
  for (const auto& e : examples) {
    if (e.task == 0 || e.task == 2) tasks_0_and_2.push_back(e);
  }
  const auto batch = make_batch(tasks_0_and_2, 0, tasks_0_and_2.size());
  response_loss(prompted_forward(backbone, state, batch).logits, batch).backward();
  EXPECT_GT(state->mid_prompts.grad().abs().sum().item<double>(), 0);
  for (int t = 0; t < 4; ++t) {
    const bool seen = t == 0 || t == 2;
    EXPECT_EQ(state->task_rows.grad()[t].abs().sum().item<double>() > 0, seen) << "task " << t;
    EXPECT_EQ(state->task_columns.grad()[t].abs().sum().item<double>() > 0, seen) << "task " << t;
  }
  EXPECT_FALSE(state->first_prompts.grad().defined());
  for (const auto& p : backbone->parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(MultitaskPrompts, TrainingMovesTheSharedPromptsAndEveryTasksFactors) {
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kMpt), 71);
  const auto train = tiny_examples(8, 72);
  std::vector<torch::Tensor> before;
  for (const auto& t : state->trained()) before.push_back(t.detach().clone());
  TrainOptions options;
  options.steps = 20;
  options.batch_size = 4;
  NullObserver observer;
  train_prompts(backbone, state, train, train, {"a", "b", "c", "d"}, options, observer);
  const auto trained = state->trained();
  ASSERT_EQ(trained.size(), 3u);  // shared prompts, u, v
  for (size_t i = 0; i < trained.size(); ++i) EXPECT_FALSE(trained[i].equal(before[i])) << "tensor " << i;
  for (int t = 0; t < 4; ++t) EXPECT_FALSE(state->task_rows[t].equal(before[1][t])) << "task " << t;
}

// E x P x C shared, T x (E x P + C) factors: 4 tasks, E x P = 8, C = 16.
TEST(MultitaskPrompts, CountsItsParametersAndRoundTripsThroughAResultsFile) {
  auto state = random_state(tiny_mop(PromptMethod::kMpt), 68);
  EXPECT_EQ(state->trained_values(), 8 * 16 + 4 * (8 + 16));
  {
    torch::NoGradGuard no_grad;
    state->task_rows.normal_();
  }
  ResultsHeader header;
  header.method = "mpt";
  header.mode = "centralized";
  header.tasks = {"a", "b", "c", "d"};
  header.experts = 4;
  header.prompts_per_expert = 2;
  const auto path = (fresh_test_dir("mpt") / "mpt.h5").string();
  {
    ResultsFile results(path, header);
    write_prompt_state(results, state);
  }
  auto loaded = read_prompt_state(path, tiny_config());
  EXPECT_EQ(loaded->config().method, PromptMethod::kMpt);
  EXPECT_EQ(loaded->config().task_count, 4);
  EXPECT_TRUE(loaded->task_rows.equal(state->task_rows));
  EXPECT_TRUE(loaded->task_columns.equal(state->task_columns));
  EXPECT_TRUE(loaded->mid_prompts.equal(state->mid_prompts));
}

TEST(MultitaskPrompts, TaskIdsOutsideTheTrainedTasksAreClearErrors) {
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kMpt), 69);
  auto examples = tiny_examples(2, 70);
  examples[1].task = 4;
  torch::NoGradGuard no_grad;
  EXPECT_NE(error_of([&] { prompted_forward(backbone, state, make_batch(examples, 0, 2)); })
                .find("task id 4 is outside the 4 tasks it was trained on"),
            std::string::npos);
  auto config = tiny_mop(PromptMethod::kPrompt);
  config.method = PromptMethod::kMpt;
  config.task_count = 0;
  EXPECT_NE(error_of([&] { config.resolved(tiny_config()); }).find("--method mpt needs the data's tasks"),
            std::string::npos);
}

}  // namespace
}  // namespace mops
