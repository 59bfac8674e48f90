// The committed embedded base model (models/, made by scripts/make_base_model.sh): it loads,
// and on skills7 test records it beats a uniform model by a wide margin on every task.
#include <gtest/gtest.h>

#include "build_paths.h"
#include "checkpoint.h"
#include "evaluation.h"
#include "instruction_dataset.h"

namespace mops {
namespace {

const std::string kModel = MOPS_SOURCE_DIR "/models/skills7-base.safetensors";
const std::string kTokenizer = MOPS_SOURCE_DIR "/models/skills7-tokenizer.model";

TEST(BaseModel, BeatsAUniformModelByAWideMarginOnEveryTask) {
  auto model = load_model(kModel).model;
  const auto tokenizer = Tokenizer::load(kTokenizer);
  ASSERT_EQ(model->config().vocab_size, tokenizer.vocab_size());
  DatasetOptions options;  // seed 0: not the records the model was pretrained on (seed 1000)
  options.skills7_per_task = 200;
  const auto dataset = load_instruction_dataset(options);
  std::vector<TokenizedExample> examples;
  for (const auto& r : dataset.test) {
    examples.push_back(*tokenize_example(r, dataset.task_id(r.task), tokenizer, model->config().max_seq_len, nullptr));
  }
  const auto report = evaluate_perplexity(examples, dataset.tasks, 32, backbone_logits(model));
  std::printf("%s", format_report(report).c_str());
  const double uniform = model->config().vocab_size;
  for (const auto& task : report.tasks) {
    EXPECT_GT(task.examples, 5u) << task.task;
    EXPECT_LT(task.perplexity, uniform / 100.0) << task.task << ": not far below the uniform model's " << uniform;
  }
}

}  // namespace
}  // namespace mops
