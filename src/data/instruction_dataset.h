// Multi-task instruction data from one or more sources, sampled and split the same way on
// every machine and rank.
//
// Sources: "skills7" (the embedded generator), "dolly:FILE.jsonl", "sni:DIRECTORY" (Super-
// NaturalInstructions task files), "jsonl:FILE" (generic, field names in LoaderOptions).
// From each source at most `samples_per_source` records are kept (those with the smallest
// seeded hash of their content), then every record goes to the test split when another
// seeded hash of its content falls in the lowest `test_fraction` of the range. Hashes are of
// the text, not of paths or positions, so the split does not depend on where files live.
// With `validation_fraction` > 0, a third hash carves a validation split out of the training
// records, and it is held out in place of the test split, which is then not kept at all: the
// data a run chooses its settings on (the test split stays the same records either way).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dataset_loaders.h"
#include "instruction_record.h"

namespace mops {

struct DatasetOptions {
  std::vector<std::string> sources = {"skills7"};
  LoaderOptions loader;
  size_t samples_per_source = 5000;
  double test_fraction = 0.1;
  double validation_fraction = 0;  // of the training records; > 0: hold out validation instead of test
  size_t skills7_per_task = 800;  // records the generator makes per task
  uint64_t seed = 0;
};

struct InstructionDataset {
  std::vector<std::string> tasks;  // task id = index, in order of first appearance
  std::vector<InstructionRecord> train;
  std::vector<InstructionRecord> test;  // the held-out records: the test split, or the validation split
  std::string held_out = "test";       // which of the two `test` holds: "test" | "validation"
  size_t skipped_records = 0;
  int task_id(const std::string& task) const;  // error if unknown
};

RecordSet load_source(const std::string& spec, const DatasetOptions& options);
InstructionDataset load_instruction_dataset(const DatasetOptions& options);

// Seeded 64-bit hash of a record's text (task, instruction, context, response).
uint64_t record_hash(const InstructionRecord& record, uint64_t seed);

}  // namespace mops
