#include "instruction_dataset.h"

#include <algorithm>
#include <numeric>

#include "errors.h"
#include "skills7.h"
#include "stable_hash.h"

namespace mops {
namespace {

constexpr uint64_t kSplitSalt = 0x51EC7E57ULL;  // the split uses another hash than the sampling
constexpr uint64_t kValidationSalt = 0x7A11DA7EULL;  // and the validation split a third one

// Whether a record's seeded hash falls in the lowest `fraction` of the range.
bool in_lowest(const InstructionRecord& r, uint64_t seed, double fraction) {
  return double(record_hash(r, seed) % 1000000) < fraction * 1e6;
}

// The `limit` records with the smallest hash, in their original order.
std::vector<InstructionRecord> sample(std::vector<InstructionRecord> records, size_t limit, uint64_t seed) {
  if (records.size() <= limit) return records;
  std::vector<size_t> order(records.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<uint64_t> hashes(records.size());
  for (size_t i = 0; i < records.size(); ++i) hashes[i] = record_hash(records[i], seed);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return hashes[a] < hashes[b]; });
  order.resize(limit);
  std::sort(order.begin(), order.end());
  std::vector<InstructionRecord> kept;
  for (size_t i : order) kept.push_back(std::move(records[i]));
  return kept;
}

}  // namespace

uint64_t record_hash(const InstructionRecord& r, uint64_t seed) {
  const std::string unit = "\x1f";
  return stable_hash(r.task + unit + r.instruction + unit + r.context + unit + r.response, seed);
}

int InstructionDataset::task_id(const std::string& task) const {
  auto it = std::find(tasks.begin(), tasks.end(), task);
  MOPS_CHECK(it != tasks.end(), "unknown task '" << task << "'");
  return int(it - tasks.begin());
}

RecordSet load_source(const std::string& spec, const DatasetOptions& options) {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string path = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (kind == "skills7") {
    MOPS_CHECK(path.empty(), "source 'skills7' takes no path (its size is --skills7-per-task)");
    RecordSet set;
    for (const auto& task : options.loader.tasks) {
      const auto& known = skills7_tasks();
      MOPS_CHECK(std::find(known.begin(), known.end(), task) != known.end(),
                 "skills7 has no task '" << task << "'; its tasks: add_to_list, numbers_to_words, sort_numbers, "
                                            "reverse_list, essential_words, fact_answer, word_relation");
    }
    for (auto& r : generate_skills7(options.skills7_per_task, options.seed)) {
      const auto& wanted = options.loader.tasks;
      if (wanted.empty() || std::find(wanted.begin(), wanted.end(), r.task) != wanted.end()) {
        set.records.push_back(std::move(r));
      }
    }
    return set;
  }
  MOPS_CHECK(!path.empty() && (kind == "dolly" || kind == "sni" || kind == "jsonl"),
             "data source '" << spec << "' is not one of skills7, dolly:FILE.jsonl, sni:DIRECTORY, jsonl:FILE");
  if (kind == "dolly") return load_dolly(path, options.loader);
  if (kind == "sni") return load_super_natural_instructions(path, options.loader);
  return load_generic_jsonl(path, options.loader);
}

InstructionDataset load_instruction_dataset(const DatasetOptions& options) {
  MOPS_CHECK(!options.sources.empty(), "no data source given (--data skills7, dolly:FILE, sni:DIR or jsonl:FILE)");
  MOPS_CHECK(options.test_fraction > 0 && options.test_fraction < 1,
             "--test-fraction = " << options.test_fraction << " is outside (0, 1)");
  MOPS_CHECK(options.validation_fraction >= 0 && options.validation_fraction < 1,
             "--validation-fraction = " << options.validation_fraction << " is outside [0, 1)");
  MOPS_CHECK(options.samples_per_source > 0, "--samples-per-source must be positive");
  const bool validation = options.validation_fraction > 0;
  InstructionDataset dataset;
  if (validation) dataset.held_out = "validation";
  for (const auto& spec : options.sources) {
    auto set = load_source(spec, options);
    dataset.skipped_records += set.skipped;
    for (auto& r : sample(std::move(set.records), options.samples_per_source, options.seed)) {
      if (std::find(dataset.tasks.begin(), dataset.tasks.end(), r.task) == dataset.tasks.end()) dataset.tasks.push_back(r.task);
      if (in_lowest(r, options.seed ^ kSplitSalt, options.test_fraction)) {
        if (!validation) dataset.test.push_back(std::move(r));  // under validation, never looked at
      } else if (validation && in_lowest(r, options.seed ^ kValidationSalt, options.validation_fraction)) {
        dataset.test.push_back(std::move(r));
      } else {
        dataset.train.push_back(std::move(r));
      }
    }
  }
  MOPS_CHECK(!dataset.train.empty() && !dataset.test.empty(),
             "the split left " << dataset.train.size() << " training and " << dataset.test.size() << " "
                               << dataset.held_out << " records: use more data or another --"
                               << dataset.held_out << "-fraction");
  return dataset;
}

}  // namespace mops
