// Tests for the dataset loaders (dataset_loaders.h): Dolly, Super-NaturalInstructions, generic JSONL.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "build_paths.h"
#include "dataset_loaders.h"
#include "errors.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace mops {
namespace {

const std::string kDolly = MOPS_SHARED_DIR "/data/dolly-sample.jsonl";
const std::string kSni = MOPS_SOURCE_DIR "/tests/fixtures/sni";
const std::string kAddIntegers = kSni + "/task1190_add_integer_to_list.json";
const std::string kSemanticRelation = kSni + "/task1418_bless_semantic_relation_classification.json";

fs::path test_dir() { return fresh_test_dir("dataset_loaders"); }


std::vector<std::string> sources(const RecordSet& set) {
  std::vector<std::string> result;
  for (const InstructionRecord& record : set.records) result.push_back(record.source);
  return result;
}

LoaderOptions with_tasks(std::vector<std::string> tasks, bool skip_bad_records = false) {
  LoaderOptions options;
  options.tasks = std::move(tasks);
  options.skip_bad_records = skip_bad_records;
  return options;
}

std::string dolly_line(const std::string& category, const std::string& response = "A") {
  return R"({"instruction": "Q", "context": "", "response": ")" + response +
         R"(", "category": ")" + category + "\"}\n";
}

// ---------------------------------------------------------------------------------- Dolly

TEST(Dolly, CategoryListsAreThePapers) {
  EXPECT_EQ(dolly_categories(),
            (std::vector<std::string>{"brainstorming", "classification", "closed_qa",
                                      "creative_writing", "general_qa", "information_extraction",
                                      "open_qa", "summarization"}));
  std::vector<std::string> paper = dolly_categories();
  paper.erase(paper.begin() + 4);  // general_qa
  EXPECT_EQ(dolly_default_categories(), paper);
}

TEST(Dolly, ReadsRealSample) {
  // The sample is the first 8 records of databricks-dolly-15k: none is general_qa.
  for (const LoaderOptions& options : {LoaderOptions{}, with_tasks(dolly_categories())}) {
    const RecordSet set = load_dolly(kDolly, options);
    ASSERT_EQ(set.records.size(), 8u);
    EXPECT_EQ(set.skipped, 0u);
  }
  const RecordSet set = load_dolly(kDolly, {});
  const InstructionRecord& fish = set.records[1];
  EXPECT_EQ(fish.task, "classification");
  EXPECT_EQ(fish.instruction, "Which is a species of fish? Tope or Rope");
  EXPECT_EQ(fish.context, "");
  EXPECT_EQ(fish.response, "Tope");
  EXPECT_EQ(fish.source, kDolly + ":2");
  const InstructionRecord& stalemate = set.records[4];
  EXPECT_EQ(stalemate.task, "information_extraction");
  EXPECT_EQ(stalemate.context.rfind("Stalemate is a situation in chess where", 0), 0u);
  EXPECT_EQ(stalemate.response.rfind("No. \nStalemate is a drawn position.", 0), 0u);
  EXPECT_EQ(set.records[7].source, kDolly + ":8");
}

TEST(Dolly, SelectsCategoriesKeepingLineOrder) {
  const RecordSet set = load_dolly(kDolly, with_tasks({"open_qa", "closed_qa"}));
  EXPECT_EQ(sources(set), (std::vector<std::string>{kDolly + ":1", kDolly + ":3", kDolly + ":4",
                                                    kDolly + ":6", kDolly + ":7"}));
}

TEST(Dolly, DropsGeneralQaByDefault) {
  const std::string path = write_file(test_dir() / "dolly.jsonl",
                                      dolly_line("open_qa") + dolly_line("general_qa") +
                                          dolly_line("summarization"));
  EXPECT_EQ(sources(load_dolly(path, {})),
            (std::vector<std::string>{path + ":1", path + ":3"}));
  const RecordSet all = load_dolly(path, with_tasks(dolly_categories()));
  ASSERT_EQ(all.records.size(), 3u);
  EXPECT_EQ(all.records[1].task, "general_qa");
}

// Bad lines and the problem the error must name.
const std::vector<std::pair<std::string, std::string>> kBadDollyLines = {
    {"{\"instruction\": \"Q\", \"context\": ", "not valid JSON (parse error at line 1"},
    {"[\"Q\", \"A\"]", "expected a JSON object, got array"},
    {R"({"instruction": "Q", "context": "", "response": "A"})", "missing field \"category\""},
    {R"({"instruction": 7, "context": "", "response": "A", "category": "open_qa"})",
     "field \"instruction\" holds number, expected a string"},
    {R"({"instruction": "Q", "context": "", "response": "", "category": "open_qa"})",
     "field \"response\" is empty"},
    {R"({"instruction": "Q", "context": "", "response": "A", "category": "poetry"})",
     "field \"category\" is \"poetry\", not one of brainstorming, classification, closed_qa, "
     "creative_writing, general_qa, information_extraction, open_qa, summarization"},
};

TEST(Dolly, BadRecordNamesFileAndLine) {
  const fs::path dir = test_dir();
  for (const auto& [line, problem] : kBadDollyLines) {
    // Line 2 is blank: line numbers count it.
    const std::string path =
        write_file(dir / "bad.jsonl", dolly_line("open_qa") + "\n" + line + "\n" + dolly_line("open_qa"));
    const std::string error = error_of([&] { load_dolly(path, {}); });
    EXPECT_NE(error.find(path + ":3: " + problem), std::string::npos) << error;
  }
}

// Found by fuzzing (fuzz/README.md): a number too large for a double threw nlohmann's out_of_range
// 406 past the loader, instead of a bad record.
TEST(Dolly, NumberOverflowIsABadRecord) {
  const std::string line = R"({"instruction": "Q", "context": 1e400, "response": "A", "category": "open_qa"})";
  const std::string path = write_file(test_dir() / "overflow.jsonl", line + "\n" + dolly_line("open_qa"));
  const std::string error = error_of([&] { load_dolly(path, {}); });
  EXPECT_NE(error.find(path + ":1: not valid JSON (number overflow parsing '1e400')"), std::string::npos) << error;
  EXPECT_EQ(load_dolly(path, with_tasks({}, /*skip_bad_records=*/true)).skipped, 1u);
}

TEST(Dolly, SkipsAndCountsBadRecords) {
  std::string content = dolly_line("open_qa");
  for (const auto& bad : kBadDollyLines) content += bad.first + "\n";
  content += dolly_line("closed_qa");
  const std::string path = write_file(test_dir() / "bad.jsonl", content);
  const RecordSet set = load_dolly(path, with_tasks({}, /*skip_bad_records=*/true));
  EXPECT_EQ(set.skipped, kBadDollyLines.size());
  EXPECT_EQ(sources(set), (std::vector<std::string>{path + ":1", path + ":8"}));
}

TEST(Dolly, UnknownRequestedCategoryListsAllowed) {
  const std::string error = error_of([] { load_dolly(kDolly, with_tasks({"open_qa", "poetry"})); });
  EXPECT_NE(error.find("unknown Dolly category \"poetry\" requested; choose from brainstorming, "
                       "classification, closed_qa, creative_writing, general_qa, "
                       "information_extraction, open_qa, summarization"),
            std::string::npos)
      << error;
}

TEST(Dolly, EmptySelectionIsAnError) {
  const std::string error = error_of([] { load_dolly(kDolly, with_tasks({"summarization"})); });
  EXPECT_NE(error.find("no records left after selecting tasks summarization from " + kDolly),
            std::string::npos)
      << error;
  // Also when skipping bad records leaves nothing.
  const std::string path = write_file(test_dir() / "bad.jsonl", "{\n");
  const std::string skipped = error_of([&] { load_dolly(path, with_tasks({}, true)); });
  EXPECT_NE(skipped.find("from " + path + " (1 bad records skipped)"), std::string::npos) << skipped;
}

TEST(Dolly, MissingFileIsAnError) {
  const fs::path dir = test_dir();
  const std::string path = (dir / "absent.jsonl").string();
  const std::string error = error_of([&] { load_dolly(path, with_tasks({}, true)); });
  EXPECT_NE(error.find("cannot open " + path + ": No such file or directory"), std::string::npos)
      << error;
  const std::string directory = error_of([&] { load_dolly(dir.string(), {}); });
  EXPECT_NE(directory.find(dir.string() + " is a directory; expected a JSONL file"), std::string::npos)
      << directory;
}

// ------------------------------------------------------------------ Super-NaturalInstructions

TEST(SuperNaturalInstructions, PaperTasksMapShortToFullNames) {
  const auto& tasks = sni_paper_tasks();
  ASSERT_EQ(tasks.size(), 7u);
  EXPECT_EQ(tasks[0], std::make_pair(std::string("quoref_question_generation"),
                                     std::string("task001_quoref_question_generation")));
  EXPECT_EQ(tasks[4], std::make_pair(std::string("semantic_relation"),
                                     std::string("task1418_bless_semantic_relation_classification")));
  EXPECT_EQ(tasks[6].second, "task698_mmmlu_answer_generation_global_facts");
}

TEST(SuperNaturalInstructions, LoadsTasksByShortNameInRequestedOrder) {
  const RecordSet set =
      load_super_natural_instructions(kSni, with_tasks({"semantic_relation", "add_integer_to_list"}));
  ASSERT_EQ(set.records.size(), 10u);
  EXPECT_EQ(set.skipped, 0u);
  const InstructionRecord& first = set.records[0];
  EXPECT_EQ(first.task, "task1418_bless_semantic_relation_classification");
  EXPECT_EQ(first.instruction.rfind("Given a pair of words, generate the relation between them.", 0), 0u);
  EXPECT_EQ(first.context, "Concept: alligator, Relatum: crocodile.");
  EXPECT_EQ(first.response, "coord");
  EXPECT_EQ(first.source, kSemanticRelation + "#task1418-b2d4f6a8c0e24a6c8e0b2d4f6a8c0e2b");
  const InstructionRecord& added = set.records[4];
  EXPECT_EQ(added.task, "task1190_add_integer_to_list");
  EXPECT_EQ(added.instruction,
            "In this task you will be given a list of integers and an integer k. You need to add "
            "integer k to each element in the list and return the updated list.");
  EXPECT_EQ(added.context, "[3, 17, -8], k=4");
  EXPECT_EQ(added.response, "[7, 21, -4]");
  EXPECT_EQ(added.source, kAddIntegers + "#task1190-3f2a9c1e5b7d4e608a1c2b3d4e5f6071");
  EXPECT_EQ(set.records[9].context, "[250, -99], k=-50");
}

TEST(SuperNaturalInstructions, FullNamesSelectTheSameRecords) {
  const RecordSet by_short = load_super_natural_instructions(kSni, with_tasks({"add_integer_to_list"}));
  // A task named twice (short and full name) is read once.
  const RecordSet by_full = load_super_natural_instructions(
      kSni, with_tasks({"task1190_add_integer_to_list", "add_integer_to_list"}));
  ASSERT_EQ(by_full.records.size(), 6u);
  EXPECT_EQ(sources(by_full), sources(by_short));
}

TEST(SuperNaturalInstructions, MissingTaskFileNamesExpectedPath) {
  // The default selection is the paper's seven; the fixtures hold only two of them.
  const std::string error = error_of([] { load_super_natural_instructions(kSni, {}); });
  EXPECT_NE(error.find("no task file " + kSni + "/task001_quoref_question_generation.json for task "
                       "\"task001_quoref_question_generation\" in " + kSni),
            std::string::npos)
      << error;
  const std::string unknown =
      error_of([] { load_super_natural_instructions(kSni, with_tasks({"task9999_nonexistent"}, true)); });
  EXPECT_NE(unknown.find("no task file " + kSni + "/task9999_nonexistent.json"), std::string::npos)
      << unknown;
  EXPECT_NE(unknown.find("quoref_question_generation, drop_question_generation"), std::string::npos)
      << unknown;
}

TEST(SuperNaturalInstructions, BadInstanceIsSkippable) {
  const std::string path = write_file(test_dir() / "task1_toy.json", R"({
    "Definition": ["Repeat the input."],
    "Positive Examples": [],
    "Instances": [
      {"id": "task1-a", "input": "x", "output": ["x"]},
      {"id": "task1-b", "output": ["y"]},
      {"id": "task1-c", "input": "z", "output": []},
      {"id": "task1-d", "input": "", "output": ["w", "v"]}
    ]})");
  const std::string dir = fs::path(path).parent_path().string();
  const std::string error = error_of([&] { load_super_natural_instructions(dir, with_tasks({"task1_toy"})); });
  EXPECT_NE(error.find(path + ": Instances[1]: missing field \"input\""), std::string::npos) << error;
  const RecordSet set = load_super_natural_instructions(dir, with_tasks({"task1_toy"}, true));
  EXPECT_EQ(set.skipped, 2u);
  EXPECT_EQ(sources(set), (std::vector<std::string>{path + "#task1-a", path + "#task1-d"}));
  EXPECT_EQ(set.records[1].context, "");
  EXPECT_EQ(set.records[1].response, "w");
}

TEST(SuperNaturalInstructions, BrokenTaskFileIsAnErrorEvenWhenSkipping) {
  const fs::path dir = test_dir();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"Definition": ["Repeat the input."], "Positive Examples": []})", "\"Instances\" is missing"},
      {R"({"Instances": []})", "\"Definition\" is missing"},
      {R"({"Definition": [""], "Instances": []})", "\"Definition\" is missing or not a list starting with a non-empty string"},
      {R"({"Definition": ["D"], "Positive Examples": {}, "Instances": []})",
       "\"Positive Examples\" holds object, expected a list"},
      {R"({"Definition": ["D"], "Instances": [)", "not valid JSON (parse error at line 1"},
      // Found by fuzzing (fuzz/README.md): nlohmann's out_of_range 406 escaped as another error.
      {R"({"Definition": ["D"], "Instances": [1e400]})", "not valid JSON (number overflow parsing '1e400')"},
  };
  for (const auto& [content, problem] : cases) {
    const std::string path = write_file(dir / "task2_broken.json", content);
    const std::string error = error_of(
        [&] { load_super_natural_instructions(dir.string(), with_tasks({"task2_broken"}, true)); });
    EXPECT_NE(error.find(path + ": " + problem), std::string::npos) << error;
  }
}

TEST(SuperNaturalInstructions, NoInstancesLeftIsAnError) {
  const fs::path dir = test_dir();
  write_file(dir / "task3_empty.json", R"({"Definition": ["D"], "Instances": [{"id": "x"}]})");
  const std::string error = error_of(
      [&] { load_super_natural_instructions(dir.string(), with_tasks({"task3_empty"}, true)); });
  EXPECT_NE(error.find("no records left after selecting tasks task3_empty from " + dir.string() +
                       " (1 bad records skipped)"),
            std::string::npos)
      << error;
}

TEST(SuperNaturalInstructions, MissingDirectoryIsAnError) {
  const std::string dir = (test_dir() / "absent").string();
  EXPECT_NE(error_of([&] { load_super_natural_instructions(dir, {}); })
                .find("Super-NaturalInstructions directory " + dir + " does not exist"),
            std::string::npos);
}

// ---------------------------------------------------------------------------- Generic JSONL

LoaderOptions custom_fields() {
  LoaderOptions options;
  options.task_field = "kind";
  options.instruction_field = "prompt";
  options.context_field = "input";
  options.response_field = "answer";
  return options;
}

const char* const kCustomJsonl =
    R"({"kind": "math", "prompt": "Add.", "input": "2 + 3", "answer": "5"})" "\n"
    R"({"kind": "chat", "prompt": "Say hi.", "answer": "Hi!", "instruction": "ignored"})" "\n"
    R"({"kind": "math", "prompt": "Double.", "input": null, "answer": "?"})" "\n";

TEST(GenericJsonl, ReadsCustomFieldNames) {
  const std::string path = write_file(test_dir() / "custom.jsonl", kCustomJsonl);
  const RecordSet set = load_generic_jsonl(path, custom_fields());
  ASSERT_EQ(set.records.size(), 3u);
  const InstructionRecord& add = set.records[0];
  EXPECT_EQ(add.task, "math");
  EXPECT_EQ(add.instruction, "Add.");
  EXPECT_EQ(add.context, "2 + 3");
  EXPECT_EQ(add.response, "5");
  EXPECT_EQ(add.source, path + ":1");
  EXPECT_EQ(set.records[1].instruction, "Say hi.");
  EXPECT_EQ(set.records[1].context, "");  // no context field
  EXPECT_EQ(set.records[2].context, "");  // null context
}

TEST(GenericJsonl, SelectsRequestedTasks) {
  const std::string path = write_file(test_dir() / "custom.jsonl", kCustomJsonl);
  LoaderOptions options = custom_fields();
  options.tasks = {"math"};
  EXPECT_EQ(sources(load_generic_jsonl(path, options)),
            (std::vector<std::string>{path + ":1", path + ":3"}));
  options.tasks = {"math", "poetry"};
  const std::string error = error_of([&] { load_generic_jsonl(path, options); });
  EXPECT_NE(error.find("task \"poetry\" requested, but no record of " + path +
                       " has it in field \"kind\"; tasks there: math, chat"),
            std::string::npos)
      << error;
}

TEST(GenericJsonl, MissingCustomFieldNamesLine) {
  const std::string path = write_file(
      test_dir() / "custom.jsonl",
      std::string(kCustomJsonl) + R"({"kind": "chat", "prompt": "Bye.", "response": "Bye!"})" "\n");
  const std::string error = error_of([&] { load_generic_jsonl(path, custom_fields()); });
  EXPECT_NE(error.find(path + ":4: missing field \"answer\""), std::string::npos) << error;
  LoaderOptions skipping = custom_fields();
  skipping.skip_bad_records = true;
  EXPECT_EQ(load_generic_jsonl(path, skipping).skipped, 1u);
}

}  // namespace
}  // namespace mops
