// The data options shared by every command that reads instruction data (--data and friends).
#pragma once
#include "cli_options.h"
#include "instruction_dataset.h"
#include "partition.h"
#include "text_corpus.h"
#include "tokenized_split.h"

namespace mops {

// --data (alias --source, the two may be mixed) and friends; `required` only changes the help
// text: load_instruction_dataset() reports a missing source.
void add_dataset_options(CommandLine& cl, bool required);
bool has_data(const CommandLine& cl);
DatasetOptions dataset_options(const CommandLine& cl);

// --partition, --alpha, --tasks-per-client, --size-exponent, --min-client-examples; each
// command adds its own --clients.
void add_partition_options(CommandLine& cl);
// The partition options: --clients clients, the options above, seeded by --data-seed.
PartitionOptions partition_options(const CommandLine& cl);

// The plain-text corpus named by `option` (--input or --corpus), read with --fields and
// --skip-bad-records; the skipped count goes to stderr.
TextCorpus read_corpus_option(const CommandLine& cl, const std::string& option);

// The instruction data the options name, tokenised with --tokenizer and cut to `max_tokens`
// (tokenize_dataset, which prints its truncation counts).
TokenizedSplit load_tokenized_data(const CommandLine& cl, int max_tokens);

}  // namespace mops
