// `mops convert --to peft` (issue 19): a LoRA run's P0 and adapters (all seven matrices, so that
// the q/k permutation matters) in PEFT's format, loaded by PEFT on the `--to hf` export of the
// embedded model (tests/reference/peft_peer.py): the same logits as mops' P0-only and prompted
// forwards within 1e-4; and the whole state in mops' own format (DIR/mops/).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "checkpoint.h"
#include "prompt_state_io.h"
#include "prompted_forward.h"
#include "safetensors.h"
#include "test_support.h"

namespace mops {
namespace {

TEST(PeftExport, PeftGivesTheLogitsOfMops) {
  const auto dir = fresh_test_dir("peft");
  const std::string model_path = MOPS_SOURCE_DIR "/models/skills7-base.safetensors";
  auto model = load_model(model_path).model;
  MopConfig c;
  c.method = PromptMethod::kLora;
  c.first_prompt_count = 3;
  c.lora_rank = 4;
  c.lora_alpha = 8;
  c.lora_targets = lora_target_names();
  PromptState state(c.resolved(model->config()), model->config(), 7);
  {
    torch::NoGradGuard no_grad;
    auto gen = at::detail::createCPUGenerator(8);
    state->first_prompts.copy_(torch::randn(state->first_prompts.sizes(), gen));
    for (auto& t : state->adapter_tensors()) t.add_(torch::randn(t.sizes(), gen) * 0.2);
  }
  ResultsHeader header;
  header.method = "lora";
  header.mode = "centralized";
  header.tasks = {"a"};
  const auto run = (dir / "run.h5").string();
  {
    ResultsFile results(run, header);
    write_prompt_state(results, state);
  }
  const auto hf = (dir / "hf").string(), adapters = (dir / "peft").string();
  for (const auto& args : {"convert --to hf --model " + model_path + " --out " + hf,
                           "convert --to peft --model " + model_path + " --prompts " + run + " --out " + adapters}) {
    const auto converted = run_mops(args);
    ASSERT_EQ(converted.exit_code, 0) << converted.output;
  }
  TokenizedExample example;
  example.ids = {1, 17, 250, 33, 600, 9, 41, 12, 900, 50, 3, 2};
  example.question_begin = 1, example.question_end = 6, example.response_begin = 6;
  std::string ids;
  for (auto id : example.ids) ids += std::to_string(id) + " ";
  const auto peer = run_command(MOPS_PYTHON " " MOPS_SOURCE_DIR "/tests/reference/peft_peer.py --model " + hf +
                                " --adapters " + adapters + " --ids '" + ids + "' --out " + (dir / "out").string() + " 2>&1");
  ASSERT_EQ(peer.exit_code, 0) << peer.output;
  torch::NoGradGuard no_grad;
  const auto batch = make_batch({example}, 0, 1);
  const int64_t T = int64_t(example.ids.size()), V = model->config().vocab_size;
  const auto p0_only = first_prompts_forward(model, state, batch.ids)[0];  // (T, V)
  const auto lora = prompted_forward(model, state, batch).logits[0];      // (T, V)
  const auto peft_p0 = read_float32_file((dir / "out" / "prompt_tuning.logits.f32").string(), {T, V});
  const auto peft_lora = read_float32_file((dir / "out" / "lora.logits.f32").string(), {T, V});
  const double d0 = (p0_only - peft_p0).abs().max().item<double>(), d1 = (lora - peft_lora).abs().max().item<double>();
  std::printf("PEFT vs mops: prompt tuning (P0) max |logit difference| %.3g, LoRA + P0 %.3g\n", d0, d1);
  EXPECT_LT(d0, 1e-4);
  EXPECT_LT(d1, 1e-4);
  EXPECT_GT((lora - p0_only).abs().max().item<double>(), 0.1) << "the adapters should change the logits";
  // The whole state in mops' own format: every tensor as in the results file.
  SafetensorsReader own((dir / "peft" / "mops" / "state.safetensors").string());
  for (const auto& item : state->named_parameters()) {
    EXPECT_TRUE(own.float_tensor(item.key()).equal(item.value())) << item.key();
  }
  EXPECT_EQ(own.names().size(), state->named_parameters().size());
}

}  // namespace
}  // namespace mops
