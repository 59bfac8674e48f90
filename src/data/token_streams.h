// Documents -> packed token streams for pretraining: each document becomes BOS ids EOS, and
// whole documents go to the held-out split by a seeded hash of their text (the same on every
// machine), so no document is split across train and test.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "instruction_format.h"
#include "tokenizer.h"

namespace mops {

// Documents already tokenised and concatenated (each as BOS ids EOS), split by document.
// The masks say which tokens are loss targets (1) and which are only context (0); they are
// all ones unless the loss is restricted to the responses of instruction examples.
struct TokenStreams {
  std::vector<int64_t> train, test;
  std::vector<uint8_t> train_targets, test_targets;  // same lengths as the streams
};

// Appends the examples' ids (each already BOS ... EOS) to `stream`: packed sequences. The
// target mask marks every token, or only the response tokens when `responses_only`.
void append_examples(std::vector<int64_t>& stream, std::vector<uint8_t>& targets,
                     const std::vector<TokenizedExample>& examples, bool responses_only);

TokenStreams build_token_streams(const std::vector<std::string>& documents, const Tokenizer& tokenizer,
                                 double test_fraction, uint64_t seed);

}  // namespace mops
