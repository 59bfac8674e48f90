// Test metrics on instruction data: perplexity over response tokens (per task and overall)
// and exact-match accuracy of greedy answers.
//
// Perplexity of a set = exp(total negative log-likelihood of its response tokens, EOS
// included / number of those tokens), so long answers weigh by their length.
#pragma once
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "example_batch.h"
#include "instruction_dataset.h"
#include "instruction_format.h"
#include "llama.h"
#include "tokenizer.h"

namespace mops {

struct TaskMetrics {
  std::string task;
  size_t examples = 0;
  size_t response_tokens = 0;
  double perplexity = 0;
  double exact_match = -1;  // fraction in [0, 1]; -1 when not measured
};

struct EvaluationReport {
  std::vector<TaskMetrics> tasks;  // one per task id
  TaskMetrics overall;
};

// The logits (B, T, V) of a batch under some model (the backbone, with or without prompts).
using BatchLogits = std::function<torch::Tensor(const ExampleBatch&)>;
// The backbone alone, without prompts.
BatchLogits backbone_logits(Llama& model);

// Sum of response-token NLL and count per example; examples are batched (right-padded).
std::vector<std::pair<double, int64_t>> response_nll(const std::vector<TokenizedExample>& examples, int batch_size,
                                                     const BatchLogits& logits_of);

EvaluationReport evaluate_perplexity(const std::vector<TokenizedExample>& examples,
                                     const std::vector<std::string>& task_names, int batch_size,
                                     const BatchLogits& logits_of);

// Greedy answers for the prompts of `records` (at most `per_task` of each task), compared with
// the reference responses after trimming spaces; fills exact_match in `report`.
void add_exact_match(EvaluationReport& report, Llama& model, const Tokenizer& tokenizer,
                     const std::vector<InstructionRecord>& records, const std::vector<int>& record_tasks,
                     size_t per_task, int max_new_tokens);

// Perplexity of `test_examples` (the tokenised test split of `dataset`) and, when
// `exact_match_per_task` > 0, exact match of greedy answers to the split's records.
EvaluationReport evaluate_test_split(Llama& model, const Tokenizer& tokenizer, const InstructionDataset& dataset,
                                     const std::vector<TokenizedExample>& test_examples, int batch_size,
                                     size_t exact_match_per_task, int max_new_tokens);

std::string format_report(const EvaluationReport& report);
// {"task": perplexity, ..., "overall": perplexity}
nlohmann::json perplexity_json(const EvaluationReport& report);

}  // namespace mops
