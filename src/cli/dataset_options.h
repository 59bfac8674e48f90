// The data options shared by every command that reads instruction data (--data and friends).
#pragma once
#include "cli_options.h"
#include "instruction_dataset.h"
#include "instruction_format.h"
#include "tokenizer.h"

namespace mops {

// --data (alias --source) and friends; `required` only changes the help text: the commands
// check has_data() themselves, so that --data and --source can be mixed.
void add_dataset_options(CommandLine& cl, bool required);
bool has_data(const CommandLine& cl);
DatasetOptions dataset_options(const CommandLine& cl);

// Train/test records tokenised with the template; prints truncation counts to stderr.
struct TokenizedSplit {
  std::vector<TokenizedExample> train, test;
};
TokenizedSplit tokenize_dataset(const InstructionDataset& dataset, const Tokenizer& tokenizer, int max_tokens);

}  // namespace mops
