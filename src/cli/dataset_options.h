// The data options shared by every command that reads instruction data (--data and friends).
#pragma once
#include "cli_options.h"
#include "instruction_dataset.h"
#include "instruction_format.h"
#include "partition.h"
#include "text_corpus.h"
#include "tokenizer.h"

namespace mops {

// --data (alias --source, the two may be mixed) and friends; `required` only changes the help
// text: load_instruction_dataset() reports a missing source.
void add_dataset_options(CommandLine& cl, bool required);
bool has_data(const CommandLine& cl);
DatasetOptions dataset_options(const CommandLine& cl);

// --partition, --alpha, --tasks-per-client, --size-exponent, --min-client-examples; each
// command adds its own --clients.
void add_partition_options(CommandLine& cl);
// The partition of training examples (task_of_example[i] = task id of example i) over
// --clients clients, seeded by --data-seed; client lists index the examples.
Partition partition_clients(const CommandLine& cl, const std::vector<int>& task_of_example, int num_tasks);

// The plain-text corpus named by `option` (--input or --corpus), read with --fields and
// --skip-bad-records; the skipped count goes to stderr.
TextCorpus read_corpus_option(const CommandLine& cl, const std::string& option);

// Train/test records tokenised with the template; prints truncation counts to stderr.
struct TokenizedSplit {
  std::vector<TokenizedExample> train, test;
};
TokenizedSplit tokenize_dataset(const InstructionDataset& dataset, const Tokenizer& tokenizer, int max_tokens);

}  // namespace mops
