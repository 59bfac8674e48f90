// The train and test records of an instruction dataset as token ids with their question and
// response spans (instruction_format.h), next to the task names their `task` fields index: what
// every command that trains or evaluates on instruction data works on.
#pragma once
#include <string>
#include <vector>

#include "instruction_dataset.h"
#include "instruction_format.h"
#include "tokenizer.h"

namespace mops {

struct TokenizedSplit {
  std::vector<std::string> tasks;              // (T) the dataset's tasks; example.task indexes them
  std::vector<TokenizedExample> train;
  std::vector<TokenizedExample> test;  // held out: the test split, or the validation split
  std::string held_out = "test";       // "test" | "validation" (InstructionDataset::held_out)
};

// Train/test records tokenised with the template and cut to `max_tokens` (instruction_format.h);
// prints the truncation counts and the dataset's skipped records to stderr.
TokenizedSplit tokenize_dataset(const InstructionDataset& dataset, const Tokenizer& tokenizer, int max_tokens);

}  // namespace mops
