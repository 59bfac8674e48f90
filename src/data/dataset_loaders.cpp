#include "dataset_loaders.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <istream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "errors.h"

namespace mops {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A record that cannot be used. The loader adds where it is, then skips it or fails.
struct BadRecord : std::runtime_error {
  using std::runtime_error::runtime_error;
};

bool contains(const std::vector<std::string>& items, const std::string& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

std::string join(const std::vector<std::string>& items) {
  std::string joined;
  for (const std::string& item : items) joined += (joined.empty() ? "" : ", ") + item;
  return joined;
}

// The parser's message without nlohmann's "[json.exception.parse_error.101] " prefix.
std::string parser_message(const json::exception& error) {
  const std::string message = error.what();
  const size_t prefix_end = message.find("] ");
  return prefix_end == std::string::npos ? message : message.substr(prefix_end + 2);
}

// VALUE as a string; throws BadRecord naming WHAT when it is not one, or is empty unless
// MAY_BE_EMPTY.
std::string text_of(const json& value, const std::string& what, bool may_be_empty) {
  if (!value.is_string()) throw BadRecord(what + " holds " + value.type_name() + ", expected a string");
  if (!may_be_empty && value.get_ref<const std::string&>().empty()) throw BadRecord(what + " is empty");
  return value.get<std::string>();
}

// OBJECT[NAME] as a string (see text_of); throws BadRecord when the field is missing.
std::string field(const json& object, const std::string& name, bool may_be_empty = false) {
  const auto it = object.find(name);
  if (it == object.end()) throw BadRecord("missing field \"" + name + "\"");
  return text_of(*it, "field \"" + name + "\"", may_be_empty);
}

// Counts the bad record at WHERE in SET when skipping bad records, or fails.
void bad_record(RecordSet& set, bool skip_bad_records, const std::string& where,
                const BadRecord& problem, const char* remedy) {
  MOPS_CHECK(skip_bad_records, where << ": " << problem.what() << "; " << remedy
                                     << ", or skip bad records (--skip-bad-records)");
  ++set.skipped;
}

// Keeps the records whose task is in SELECTED (all when it is empty); fails when none is left.
void keep_tasks(RecordSet& set, const std::vector<std::string>& selected, const std::string& from) {
  if (!selected.empty()) {
    const auto unselected = [&](const InstructionRecord& r) { return !contains(selected, r.task); };
    set.records.erase(std::remove_if(set.records.begin(), set.records.end(), unselected),
                      set.records.end());
  }
  MOPS_CHECK(!set.records.empty(),
             "no records left after selecting tasks " << (selected.empty() ? "(all)" : join(selected))
                 << " from " << from << " (" << set.skipped
                 << " bad records skipped); check the file and the selected tasks");
}

struct JsonlFields {
  std::string task, instruction, context, response;
};

// One JSONL line as a record (source not set); throws BadRecord. The context field may be
// absent or null; a non-empty ALLOWED_TASKS lists the only valid task names.
InstructionRecord parse_jsonl_record(const std::string& line, const JsonlFields& fields,
                                     const std::vector<std::string>& allowed_tasks) {
  json object;
  try {
    object = json::parse(line);
  } catch (const json::exception& error) {  // parse_error, or out_of_range 406 (number overflow)
    throw BadRecord("not valid JSON (" + parser_message(error) + ")");
  }
  if (!object.is_object()) throw BadRecord(std::string("expected a JSON object, got ") + object.type_name());
  InstructionRecord record;
  record.task = field(object, fields.task);
  if (!allowed_tasks.empty() && !contains(allowed_tasks, record.task)) {
    throw BadRecord("field \"" + fields.task + "\" is \"" + record.task + "\", not one of " +
                    join(allowed_tasks));
  }
  record.instruction = field(object, fields.instruction);
  const auto context = object.find(fields.context);
  if (context != object.end() && !context->is_null()) {
    record.context = text_of(*context, "field \"" + fields.context + "\"", true);
  }
  record.response = field(object, fields.response);
  return record;
}

// Every record of the JSONL text IN, read from PATH, in line order (blank lines ignored),
// source "PATH:LINE".
RecordSet read_jsonl(const std::string& path, std::istream& in, const JsonlFields& fields,
                     const std::vector<std::string>& allowed_tasks, bool skip_bad_records) {
  RecordSet set;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r\n\f\v") == std::string::npos) continue;
    const std::string source = path + ":" + std::to_string(number);
    try {
      set.records.push_back(parse_jsonl_record(line, fields, allowed_tasks));
      set.records.back().source = source;
    } catch (const BadRecord& problem) {
      bad_record(set, skip_bad_records, source, problem, "fix or remove the line");
    }
  }
  MOPS_CHECK(!in.bad(), "error reading " << path << ": " << std::strerror(errno));
  return set;
}

// The JSONL file at PATH, open for reading.
std::ifstream open_jsonl(const std::string& path) {
  MOPS_CHECK(!fs::is_directory(path), path << " is a directory; expected a JSONL file");
  std::ifstream file(path);
  MOPS_CHECK(file.is_open(), "cannot open " << path << ": " << std::strerror(errno) << "; check the path");
  return file;
}

// INPUT (a task file's stream or text) parsed as JSON; PATH names it in the error.
template <class Input>
json parse_task_json(const std::string& path, Input&& input) {
  try {
    return json::parse(std::forward<Input>(input));
  } catch (const json::exception& error) {  // parse_error, or out_of_range 406 (number overflow)
    MOPS_FAIL(path << ": not valid JSON (" << parser_message(error)
                   << "); fix the file or leave the task out");
  }
}

// TASK, read from the task file PATH, checked for the fields every task needs (errors, never
// skipped).
json checked_task(const std::string& path, json task) {
  const char* const format =
      "; a Super-NaturalInstructions task file is an object with \"Definition\": [string, ...] "
      "and \"Instances\": [{\"id\", \"input\", \"output\": [string, ...]}, ...]";
  MOPS_CHECK(task.is_object(), path << ": expected a JSON object, got " << task.type_name() << format);
  const auto definition = task.find("Definition");
  MOPS_CHECK(definition != task.end() && definition->is_array() && !definition->empty() &&
                 definition->front().is_string() && !definition->front().get_ref<const std::string&>().empty(),
             path << ": \"Definition\" is missing or not a list starting with a non-empty string" << format);
  const auto examples = task.find("Positive Examples");
  MOPS_CHECK(examples == task.end() || examples->is_array(),
             path << ": \"Positive Examples\" holds " << examples->type_name() << ", expected a list");
  const auto instances = task.find("Instances");
  MOPS_CHECK(instances != task.end() && instances->is_array(),
             path << ": \"Instances\" is missing or not a list" << format);
  return task;
}

// The task file PATH, checked (see checked_task).
json read_task_file(const std::string& path) {
  std::ifstream file(path);
  MOPS_CHECK(file.is_open(), "cannot open task file " << path << ": " << std::strerror(errno));
  return checked_task(path, parse_task_json(path, file));
}

// One instance of a task file; RECORD holds the task and instruction. Throws BadRecord.
InstructionRecord parse_instance(const json& instance, InstructionRecord record, const std::string& path) {
  if (!instance.is_object()) throw BadRecord(std::string("expected a JSON object, got ") + instance.type_name());
  record.source = path + "#" + field(instance, "id");
  record.context = field(instance, "input", /*may_be_empty=*/true);
  const auto output = instance.find("output");
  if (output == instance.end() || !output->is_array() || output->empty()) {
    throw BadRecord("\"output\" is missing or not a non-empty list of strings");
  }
  record.response = text_of(output->front(), "output[0]", false);
  return record;
}

// The full task name of NAME: a short name of the paper's tasks, or NAME itself.
std::string full_task_name(const std::string& name) {
  for (const auto& [short_name, full_name] : sni_paper_tasks()) {
    if (name == short_name) return full_name;
  }
  return name;
}

std::vector<std::string> paper_short_names() {
  std::vector<std::string> names;
  for (const auto& task : sni_paper_tasks()) names.push_back(task.first);
  return names;
}

// The Dolly categories OPTIONS selects; fails on an unknown one.
const std::vector<std::string>& dolly_selection(const LoaderOptions& options) {
  const std::vector<std::string>& selected =
      options.tasks.empty() ? dolly_default_categories() : options.tasks;
  for (const std::string& category : selected) {
    MOPS_CHECK(contains(dolly_categories(), category),
               "unknown Dolly category \"" << category << "\" requested; choose from "
                                           << join(dolly_categories()));
  }
  return selected;
}

// The Dolly records of IN (read from PATH) in the categories SELECTED.
RecordSet dolly_records(const std::string& path, std::istream& in,
                        const std::vector<std::string>& selected, bool skip_bad_records) {
  RecordSet set = read_jsonl(path, in, {"category", "instruction", "context", "response"},
                             dolly_categories(), skip_bad_records);
  keep_tasks(set, selected, path);
  return set;
}

// The generic JSONL records of IN (read from PATH) that OPTIONS selects.
RecordSet generic_jsonl_records(const std::string& path, std::istream& in, const LoaderOptions& options) {
  const JsonlFields fields = {options.task_field, options.instruction_field, options.context_field,
                              options.response_field};
  RecordSet set = read_jsonl(path, in, fields, {}, options.skip_bad_records);
  std::vector<std::string> present;
  for (const InstructionRecord& record : set.records) {
    if (!contains(present, record.task)) present.push_back(record.task);
  }
  for (const std::string& task : options.tasks) {
    MOPS_CHECK(contains(present, task), "task \"" << task << "\" requested, but no record of "
                                                  << path << " has it in field \"" << fields.task
                                                  << "\"; tasks there: " << join(present));
  }
  keep_tasks(set, options.tasks, path);
  return set;
}

// Appends to SET one record per instance of TASK (checked, read from PATH) for task TASK_NAME.
void append_task_records(RecordSet& set, const std::string& path, const std::string& task_name,
                         const json& task, bool skip_bad_records) {
  InstructionRecord common;
  common.task = task_name;
  common.instruction = task["Definition"].front().get<std::string>();
  const json& instances = task["Instances"];
  for (size_t i = 0; i < instances.size(); ++i) {
    try {
      set.records.push_back(parse_instance(instances[i], common, path));
    } catch (const BadRecord& problem) {
      bad_record(set, skip_bad_records, path + ": Instances[" + std::to_string(i) + "]",
                 problem, "fix or remove the instance");
    }
  }
}

}  // namespace

const std::vector<std::string>& dolly_categories() {
  static const std::vector<std::string> categories = {
      "brainstorming", "classification", "closed_qa",      "creative_writing",
      "general_qa",    "information_extraction", "open_qa", "summarization"};
  return categories;
}

const std::vector<std::string>& dolly_default_categories() {
  static const std::vector<std::string> categories = {
      "brainstorming", "classification", "closed_qa",     "creative_writing",
      "information_extraction",          "open_qa",       "summarization"};
  return categories;
}

RecordSet load_dolly(const std::string& path, const LoaderOptions& options) {
  const std::vector<std::string>& selected = dolly_selection(options);
  std::ifstream file = open_jsonl(path);
  return dolly_records(path, file, selected, options.skip_bad_records);
}

RecordSet parse_dolly(const std::string& path, const std::string& text, const LoaderOptions& options) {
  const std::vector<std::string>& selected = dolly_selection(options);
  std::istringstream in(text);
  return dolly_records(path, in, selected, options.skip_bad_records);
}

const std::vector<std::pair<std::string, std::string>>& sni_paper_tasks() {
  static const std::vector<std::pair<std::string, std::string>> tasks = {
      {"quoref_question_generation", "task001_quoref_question_generation"},
      {"drop_question_generation", "task026_drop_question_generation"},
      {"essential_terms", "task044_essential_terms_identifying_essential_words"},
      {"add_integer_to_list", "task1190_add_integer_to_list"},
      {"semantic_relation", "task1418_bless_semantic_relation_classification"},
      {"ljspeech_text_modification", "task1703_ljspeech_textmodification"},
      {"global_facts", "task698_mmmlu_answer_generation_global_facts"}};
  return tasks;
}

RecordSet load_super_natural_instructions(const std::string& directory,
                                          const LoaderOptions& options) {
  MOPS_CHECK(fs::is_directory(directory),
             "Super-NaturalInstructions directory " << directory
                 << " does not exist or is not a directory; give the directory of the task files");
  std::vector<std::string> selected;  // full names, in the requested order, without repeats
  for (const std::string& name : options.tasks) {
    if (!contains(selected, full_task_name(name))) selected.push_back(full_task_name(name));
  }
  if (options.tasks.empty()) {
    for (const auto& task : sni_paper_tasks()) selected.push_back(task.second);
  }
  RecordSet set;
  for (const std::string& task_name : selected) {
    const std::string path = (fs::path(directory) / (task_name + ".json")).string();
    MOPS_CHECK(fs::exists(path), "no task file " << path << " for task \"" << task_name << "\" in "
                                     << directory << "; select tasks that have a <task_name>.json "
                                     << "there, by full name or by one of the short names "
                                     << join(paper_short_names()));
    append_task_records(set, path, task_name, read_task_file(path), options.skip_bad_records);
  }
  keep_tasks(set, selected, directory);
  return set;
}

RecordSet parse_sni_task(const std::string& path, const std::string& task_name,
                         const std::string& text, const LoaderOptions& options) {
  RecordSet set;
  append_task_records(set, path, task_name, checked_task(path, parse_task_json(path, text)),
                      options.skip_bad_records);
  return set;
}

RecordSet load_generic_jsonl(const std::string& path, const LoaderOptions& options) {
  std::ifstream file = open_jsonl(path);
  return generic_jsonl_records(path, file, options);
}

RecordSet parse_generic_jsonl(const std::string& path, const std::string& text,
                              const LoaderOptions& options) {
  std::istringstream in(text);
  return generic_jsonl_records(path, in, options);
}

}  // namespace mops
