// `mops evaluate`: per-task test perplexity over response tokens and exact match of greedy answers.
#include <iostream>
#include <limits>

#include "checkpoint.h"
#include "command_start.h"
#include "commands.h"
#include "dataset_options.h"
#include "evaluation.h"

namespace mops {

int run_evaluate(int argc, const char* const* argv) {
  CommandLine cl("evaluate",
                 "Evaluate a model on the test split of instruction data: perplexity over response tokens per task "
                 "and overall, and exact-match accuracy of greedy answers.");
  cl.options().add_options()
      ("model", po::value<std::string>()->required()->value_name("PATH"), "checkpoint")
      ("tokenizer", po::value<std::string>()->required()->value_name("FILE"), "SentencePiece .model");
  cl.add_number<int>("batch-size", 16, Range::closed(1, 4096), "examples per forward pass");
  cl.add_number<int>("exact-match-per-task", 50, Range::closed(0, std::numeric_limits<int>::max()),
                     "test examples per task answered greedily (0: none)");
  cl.add_number<int>("max-new-tokens", 64, Range::closed(1, 4096), "longest greedy answer");
  add_dataset_options(cl, true);
  cl.add_threads_option();
  cl.add_device_options(true);
  cl.add_seed_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  const auto compute = start_command(cl);
  const auto dataset = load_instruction_dataset(dataset_options(cl));
  const auto tokenizer = Tokenizer::load(cl.get<std::string>("tokenizer"));
  auto model = load_model(cl.get<std::string>("model")).model;
  model->freeze_on(compute.device, compute.dtype);
  const auto examples = tokenize_dataset(dataset, tokenizer, model->config().max_seq_len);
  const auto report = evaluate_test_split(model, tokenizer, dataset, examples.test, cl.get<int>("batch-size"),
                                          size_t(cl.get<int>("exact-match-per-task")), cl.get<int>("max-new-tokens"));
  std::cout << examples.held_out << " split (" << examples.test.size() << " examples; a uniform model has perplexity "
            << model->config().vocab_size << ")\n"
            << format_report(report);
  return 0;
}

}  // namespace mops
