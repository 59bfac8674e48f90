#include "instruction_format.h"

#include "errors.h"

namespace mops {
namespace {

const char* kInstructionHeader = "### Instruction:\n";
const char* kInputHeader = "\n\n### Input:\n";
const char* kResponseHeader = "\n\n### Response:\n";

std::vector<int64_t> encode(const Tokenizer& tokenizer, const std::string& text) {
  const auto ids = tokenizer.encode(text);
  return std::vector<int64_t>(ids.begin(), ids.end());
}

void append(std::vector<int64_t>& ids, const std::vector<int64_t>& more) { ids.insert(ids.end(), more.begin(), more.end()); }

// The prompt's token segments around the (already encoded, possibly cut) context.
struct PromptTokens {
  std::vector<int64_t> ids;
  int64_t question_begin = 0, question_end = 0;
};

PromptTokens prompt_tokens(const InstructionRecord& r, const Tokenizer& tokenizer,
                           const std::vector<int64_t>& context) {
  PromptTokens p;
  p.ids.push_back(tokenizer.bos_id());
  append(p.ids, encode(tokenizer, kInstructionHeader));
  p.question_begin = int64_t(p.ids.size());
  append(p.ids, encode(tokenizer, r.instruction));
  if (!r.context.empty()) {
    append(p.ids, encode(tokenizer, kInputHeader));
    append(p.ids, context);
  }
  p.question_end = int64_t(p.ids.size());
  append(p.ids, encode(tokenizer, kResponseHeader));
  return p;
}

}  // namespace

std::string format_prompt(const InstructionRecord& r) {
  std::string text = kInstructionHeader + r.instruction;
  if (!r.context.empty()) text += kInputHeader + r.context;
  return text + kResponseHeader;
}

std::optional<TokenizedExample> tokenize_example(const InstructionRecord& r, int task, const Tokenizer& tokenizer,
                                                 int max_tokens, TruncationCounts* counts) {
  MOPS_CHECK(!r.instruction.empty(), r.source << ": the instruction is empty; the gate needs question tokens");
  MOPS_CHECK(tokenizer.bos_id() >= 0 && tokenizer.eos_id() >= 0, "the tokenizer has no BOS/EOS ids");
  auto response = encode(tokenizer, r.response);
  response.push_back(tokenizer.eos_id());
  auto context = encode(tokenizer, r.context);
  auto prompt = prompt_tokens(r, tokenizer, context);
  // Room left for context tokens once everything else is in.
  const int64_t room = max_tokens - int64_t(prompt.ids.size() - context.size() + response.size());
  if (room < 0) {
    if (counts) ++counts->dropped;
    return std::nullopt;
  }
  if (int64_t(context.size()) > room) {
    if (counts) ++counts->truncated;
    context.resize(room);
    prompt = prompt_tokens(r, tokenizer, context);
  }
  TokenizedExample example;
  example.ids = prompt.ids;
  example.question_begin = prompt.question_begin;
  example.question_end = prompt.question_end;
  example.response_begin = int64_t(prompt.ids.size());
  append(example.ids, response);
  example.task = task;
  return example;
}

TokenizedExample tokenize_prompt(const InstructionRecord& record, const Tokenizer& tokenizer) {
  auto p = prompt_tokens(record, tokenizer, encode(tokenizer, record.context));
  TokenizedExample example;
  example.ids = p.ids;
  example.question_begin = p.question_begin;
  example.question_end = p.question_end;
  example.response_begin = int64_t(p.ids.size());
  return example;
}

}  // namespace mops
