// Dataset loaders: read instruction-tuning data (databricks-dolly-15k, Super-NaturalInstructions,
// generic JSONL) into InstructionRecords. Every loader throws mops::Error naming the file (and
// line or instance) on an unreadable file, a bad record, an unknown requested task, or when no
// record is left after selecting tasks.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "instruction_record.h"

namespace mops {

struct LoaderOptions {
  std::vector<std::string> tasks;  // tasks/categories to keep; empty = the loader's default set
  // Skip and count bad records (malformed JSON, wrong types, empty required fields, unknown
  // category, bad SNI instance) instead of failing.
  bool skip_bad_records = false;
  // Generic JSONL only: the field names. The context field may be absent (or null) in a record.
  std::string task_field = "category", instruction_field = "instruction",
              context_field = "context", response_field = "response";
};

// databricks-dolly-15k JSONL: fields instruction, context, response, category; every category
// must be one of dolly_categories(). Default selection: dolly_default_categories() (the paper's
// seven: general_qa dropped). Records keep line order; source = "FILE:LINE".
RecordSet load_dolly(const std::string& path, const LoaderOptions& options);
const std::vector<std::string>& dolly_categories();          // all eight, sorted
const std::vector<std::string>& dolly_default_categories();  // the paper's seven, sorted

// Super-NaturalInstructions: DIRECTORY holds one <task_name>.json per task, an object with
// "Definition" (list of strings; the first is the instruction), optional "Positive Examples"
// (a list) and "Instances" (list of {"id", "input", "output": [string, ...]}). One record per
// instance: task = file stem, instruction = Definition[0], context = input,
// response = output[0], source = "FILE#ID". Tasks are chosen by full name or by the paper's
// short name (sni_paper_tasks()); default = the paper's seven. Records follow the order of the
// requested tasks, then the instances' file order. A requested task without a file is an error.
RecordSet load_super_natural_instructions(const std::string& directory,
                                          const LoaderOptions& options);
// The paper's seven tasks: short name -> full task name.
const std::vector<std::pair<std::string, std::string>>& sni_paper_tasks();

// Generic JSONL with the field names in OPTIONS. Any task name is accepted; a requested task
// must occur in the file. Default selection: every record. source = "FILE:LINE".
RecordSet load_generic_jsonl(const std::string& path, const LoaderOptions& options);

// The same loaders on text in memory: TEXT is read as if it were the file PATH, which only names
// it in sources and messages (the fuzz targets in fuzz/ use these). parse_sni_task reads one task
// file for task TASK_NAME: its records in instance order (bad instances skipped or failing as in
// load_super_natural_instructions); it does not require any record to be left.
RecordSet parse_dolly(const std::string& path, const std::string& text, const LoaderOptions& options);
RecordSet parse_generic_jsonl(const std::string& path, const std::string& text,
                              const LoaderOptions& options);
RecordSet parse_sni_task(const std::string& path, const std::string& task_name,
                         const std::string& text, const LoaderOptions& options);

}  // namespace mops
