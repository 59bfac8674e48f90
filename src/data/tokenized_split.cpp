#include "tokenized_split.h"

#include <iostream>

namespace mops {

TokenizedSplit tokenize_dataset(const InstructionDataset& dataset, const Tokenizer& tokenizer, int max_tokens) {
  TokenizedSplit split;
  split.tasks = dataset.tasks;
  split.held_out = dataset.held_out;
  TruncationCounts counts;
  for (const auto& r : dataset.train) {
    if (auto e = tokenize_example(r, dataset.task_id(r.task), tokenizer, max_tokens, &counts)) split.train.push_back(*e);
  }
  for (const auto& r : dataset.test) {
    if (auto e = tokenize_example(r, dataset.task_id(r.task), tokenizer, max_tokens, &counts)) split.test.push_back(*e);
  }
  if (counts.truncated || counts.dropped) {
    std::cerr << "longer than " << max_tokens << " tokens: " << counts.truncated << " examples had their context cut, "
              << counts.dropped << " were dropped\n";
  }
  if (dataset.skipped_records) std::cerr << "skipped " << dataset.skipped_records << " bad records\n";
  return split;
}

}  // namespace mops
