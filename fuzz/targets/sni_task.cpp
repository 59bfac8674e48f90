// Fuzz target (e): the Super-NaturalInstructions task-file parser of src/data/dataset_loaders.cpp
// (parse_sni_task) on the input as one task file, with and without skipping bad instances.
// Invariants of accepted results: one record per good instance, each with the task's name, the
// non-empty Definition[0] as instruction, a non-empty response and source "PATH#ID"; a strict
// parse that succeeds equals the skipping one with nothing skipped.
#include <string>

#include "dataset_loaders.h"
#include "errors.h"
#include "fuzz_target.h"

namespace {

const std::string kPath = "fuzz/task_fuzz.json", kTask = "task_fuzz";

void check_set(const mops::RecordSet& set, bool skipping) {
  MOPS_FUZZ_ASSERT(skipping || set.skipped == 0);
  for (const mops::InstructionRecord& record : set.records) {
    MOPS_FUZZ_ASSERT(record.task == kTask);
    MOPS_FUZZ_ASSERT(!record.instruction.empty() && !record.response.empty());
    MOPS_FUZZ_ASSERT(record.instruction == set.records.front().instruction);
    MOPS_FUZZ_ASSERT(record.source.compare(0, kPath.size() + 1, kPath + "#") == 0);
  }
}

bool try_parse(const std::string& text, bool skipping, mops::RecordSet& set) {
  mops::LoaderOptions options;
  options.skip_bad_records = skipping;
  try {
    set = mops::parse_sni_task(kPath, kTask, text, options);
  } catch (const mops::Error&) {
    return false;  // rejected: expected for bad input
  }
  check_set(set, skipping);
  return true;
}

int one_input(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  mops::RecordSet strict, skipping;
  const bool strict_ok = try_parse(text, false, strict);
  const bool skipping_ok = try_parse(text, true, skipping);
  if (strict_ok) {
    MOPS_FUZZ_ASSERT(skipping_ok && skipping.skipped == 0);
    MOPS_FUZZ_ASSERT(strict.records.size() == skipping.records.size());
    for (size_t i = 0; i < strict.records.size(); ++i) {
      MOPS_FUZZ_ASSERT(strict.records[i].source == skipping.records[i].source);
      MOPS_FUZZ_ASSERT(strict.records[i].context == skipping.records[i].context);
      MOPS_FUZZ_ASSERT(strict.records[i].response == skipping.records[i].response);
    }
  }
  return 0;
}

}  // namespace

MOPS_FUZZ_TARGET(sni_task, one_input)
