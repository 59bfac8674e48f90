// Fuzz target (d): the JSONL record parsers of src/data/dataset_loaders.cpp, Dolly and generic JSONL,
// on the input as a whole file (parse_dolly, parse_generic_jsonl), with and without skipping bad
// records. Invariants of accepted results: every record has a non-empty task, instruction and
// response and a source "PATH:LINE" with increasing line numbers inside the text; a strict parse
// that succeeds equals the skipping one with nothing skipped; Dolly's records are exactly the
// generic parser's records (Dolly's field names) whose task is one of Dolly's default categories.
#include <algorithm>
#include <string>
#include <vector>

#include "dataset_loaders.h"
#include "errors.h"
#include "fuzz_target.h"

namespace {

const std::string kPath = "fuzz.jsonl";

bool same_records(const mops::RecordSet& a, const mops::RecordSet& b) {
  if (a.records.size() != b.records.size()) return false;
  for (size_t i = 0; i < a.records.size(); ++i) {
    const auto &x = a.records[i], &y = b.records[i];
    if (x.task != y.task || x.instruction != y.instruction || x.context != y.context ||
        x.response != y.response || x.source != y.source) {
      return false;
    }
  }
  return true;
}

// Invariants of any accepted set read from TEXT.
void check_set(const mops::RecordSet& set, const std::string& text, bool skipping) {
  const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  MOPS_FUZZ_ASSERT(!set.records.empty());
  MOPS_FUZZ_ASSERT(skipping || set.skipped == 0);
  MOPS_FUZZ_ASSERT(set.records.size() + set.skipped <= lines);
  size_t previous_line = 0;
  for (const mops::InstructionRecord& record : set.records) {
    MOPS_FUZZ_ASSERT(!record.task.empty() && !record.instruction.empty() && !record.response.empty());
    MOPS_FUZZ_ASSERT(record.source.compare(0, kPath.size() + 1, kPath + ":") == 0);
    const std::string number = record.source.substr(kPath.size() + 1);
    MOPS_FUZZ_ASSERT(!number.empty() && number.find_first_not_of("0123456789") == std::string::npos);
    const size_t line = std::stoul(number);
    MOPS_FUZZ_ASSERT(line > previous_line && line <= lines);
    previous_line = line;
  }
}

template <class Parse>
bool try_parse(Parse parse, const std::string& text, const mops::LoaderOptions& options,
               mops::RecordSet& set) {
  try {
    set = parse(kPath, text, options);
  } catch (const mops::Error&) {
    return false;  // rejected: expected for bad input
  }
  check_set(set, text, options.skip_bad_records);
  return true;
}

int one_input(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  mops::LoaderOptions strict, skipping;
  skipping.skip_bad_records = true;

  mops::RecordSet dolly_strict, dolly_skipping, generic_strict, generic_skipping;
  const bool dolly_strict_ok = try_parse(mops::parse_dolly, text, strict, dolly_strict);
  const bool dolly_skipping_ok = try_parse(mops::parse_dolly, text, skipping, dolly_skipping);
  const bool generic_strict_ok = try_parse(mops::parse_generic_jsonl, text, strict, generic_strict);
  const bool generic_skipping_ok = try_parse(mops::parse_generic_jsonl, text, skipping, generic_skipping);

  if (dolly_strict_ok) MOPS_FUZZ_ASSERT(dolly_skipping_ok && same_records(dolly_strict, dolly_skipping));
  if (generic_strict_ok) {
    MOPS_FUZZ_ASSERT(generic_skipping_ok && same_records(generic_strict, generic_skipping));
  }
  if (dolly_strict_ok) MOPS_FUZZ_ASSERT(generic_strict_ok);  // Dolly's rules are stricter

  // Dolly (skipping) = the generic records whose task is a default Dolly category.
  if (generic_skipping_ok) {
    mops::RecordSet expected;
    for (const auto& record : generic_skipping.records) {
      const auto& categories = mops::dolly_default_categories();
      if (std::find(categories.begin(), categories.end(), record.task) != categories.end()) {
        expected.records.push_back(record);
      }
    }
    MOPS_FUZZ_ASSERT(dolly_skipping_ok == !expected.records.empty());
    if (dolly_skipping_ok) MOPS_FUZZ_ASSERT(same_records(expected, dolly_skipping));
  } else {
    MOPS_FUZZ_ASSERT(!dolly_skipping_ok);
  }

  // A requested task is kept alone (generic JSONL: any name that occurs).
  if (generic_skipping_ok) {
    mops::LoaderOptions one_task = skipping;
    one_task.tasks = {generic_skipping.records.back().task};
    const mops::RecordSet set = mops::parse_generic_jsonl(kPath, text, one_task);
    for (const auto& record : set.records) MOPS_FUZZ_ASSERT(record.task == one_task.tasks[0]);
  }
  return 0;
}

}  // namespace

MOPS_FUZZ_TARGET(jsonl_records, one_input)
