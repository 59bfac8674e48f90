// The one prompt template, used everywhere (pretraining text, training, evaluation, generation):
//
//   ### Instruction:\n{instruction}\n\n### Input:\n{context}\n\n### Response:\n{response}<EOS>
//
// (the Input block only when there is a context). Segments are tokenised one by one, so the
// spans below are exact: the gate pools over the question span (instruction through context),
// loss and perplexity are computed on the response span (response tokens and EOS).
//
// Truncation policy: an example longer than `max_tokens` loses tokens from the end of its
// context, as many as needed; if it would still not fit without any context it is dropped.
// Both cases are counted.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "instruction_record.h"
#include "tokenizer.h"

namespace mops {

struct TokenizedExample {
  std::vector<int64_t> ids;   // BOS, prompt, response, EOS
  int64_t question_begin = 0;  // [question_begin, question_end): instruction .. end of context
  int64_t question_end = 0;
  int64_t response_begin = 0;  // [response_begin, ids.size()): response tokens and EOS
  int task = 0;                // index into the run's task list
};

struct TruncationCounts {
  size_t truncated = 0;  // context shortened to fit
  size_t dropped = 0;    // did not fit even without context
};

// Text of the prompt up to and including the response marker (what generation continues).
std::string format_prompt(const InstructionRecord& record);

std::optional<TokenizedExample> tokenize_example(const InstructionRecord& record, int task, const Tokenizer& tokenizer,
                                                 int max_tokens, TruncationCounts* counts);

// A prompt for generation: BOS and the prompt, no response (response_begin = ids.size()),
// with its question span for the gate.
TokenizedExample tokenize_prompt(const InstructionRecord& record, const Tokenizer& tokenizer);

}  // namespace mops
