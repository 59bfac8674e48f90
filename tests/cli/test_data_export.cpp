// `mops data export` (issue 19): the JSON Lines hold exactly the tokenized examples the runs use
// and, with --clients, the partition `mops federate` computes from the same options.
#include <nlohmann/json.hpp>

#include "example_export.h"
#include "partition.h"
#include "test_support.h"
#include "tokenized_split.h"

namespace mops {
namespace {

const std::string kTokenizer = MOPS_SOURCE_DIR "/models/skills7-tokenizer.model";

std::vector<nlohmann::json> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// What the command should have written: the same data, tokenized in this process.
TokenizedSplit expected_split(uint64_t seed) {
  DatasetOptions options;
  options.skills7_per_task = 30;
  options.seed = seed;
  return tokenize_dataset(load_instruction_dataset(options), Tokenizer::load(kTokenizer), 431);
}

void expect_example(const nlohmann::json& line, const TokenizedExample& e, const std::vector<std::string>& tasks) {
  EXPECT_EQ(line.at("ids").get<std::vector<int64_t>>(), e.ids);
  EXPECT_EQ(line.at("task_id").get<int>(), e.task);
  EXPECT_EQ(line.at("task").get<std::string>(), tasks[size_t(e.task)]);
  EXPECT_EQ(line.at("question_begin").get<int64_t>(), e.question_begin);
  EXPECT_EQ(line.at("question_end").get<int64_t>(), e.question_end);
  EXPECT_EQ(line.at("response_begin").get<int64_t>(), e.response_begin);
}

TEST(DataExport, LinesAreTheRunsExamplesAndTheFederatedPartition) {
  const auto dir = fresh_test_dir("data_export");
  const auto out = (dir / "skills7.jsonl").string();
  const auto run = run_mops("data export --data skills7 --skills7-per-task 30 --data-seed 4 --tokenizer " + kTokenizer +
                            " --max-tokens 431 --clients 6 --alpha 0.5 --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto expected = expected_split(4);
  EXPECT_NE(run.output.find("wrote " + out + ": " + std::to_string(expected.train.size()) + " train and " +
                            std::to_string(expected.test.size()) + " test examples of 7 tasks, over 6 clients"),
            std::string::npos)
      << run.output;
  const auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), expected.train.size() + expected.test.size());

  std::vector<int> tasks;
  for (const auto& e : expected.train) tasks.push_back(e.task);
  PartitionOptions partition;
  partition.clients = 6;
  partition.alpha = 0.5;
  partition.seed = 4;
  const auto clients = partition_records(tasks, 7, partition);
  std::vector<int> client_of(tasks.size(), -1);
  for (size_t c = 0; c < clients.clients.size(); ++c)
    for (size_t i : clients.clients[c]) client_of[i] = int(c);

  for (size_t i = 0; i < expected.train.size(); ++i) {
    SCOPED_TRACE("train line " + std::to_string(i));
    EXPECT_EQ(lines[i].at("split"), "train");
    EXPECT_EQ(lines[i].at("index").get<size_t>(), i);
    EXPECT_EQ(lines[i].at("client").get<int>(), client_of[i]);
    expect_example(lines[i], expected.train[i], expected.tasks);
  }
  for (size_t i = 0; i < expected.test.size(); ++i) {
    const auto& line = lines[expected.train.size() + i];
    SCOPED_TRACE("test line " + std::to_string(i));
    EXPECT_EQ(line.at("split"), "test");
    EXPECT_EQ(line.at("index").get<size_t>(), i);
    EXPECT_FALSE(line.contains("client"));
    expect_example(line, expected.test[i], expected.tasks);
  }
}

TEST(DataExport, ValidationSplitIsNamedAndAFinishedExportIsKept) {
  const auto dir = fresh_test_dir("data_export");
  const auto out = (dir / "v.jsonl").string();
  const std::string command = "data export --data skills7 --skills7-per-task 10 --validation-fraction 0.2 --tokenizer " +
                              kTokenizer + " --out " + out;
  ASSERT_EQ(run_mops(command).exit_code, 0);
  const auto lines = read_lines(out);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back().at("split"), "validation");
  EXPECT_FALSE(lines.front().contains("client"));
  std::ifstream before_stream(out);
  const std::string before((std::istreambuf_iterator<char>(before_stream)), {});
  const auto again = run_mops(command + " --data-seed 9");
  EXPECT_EQ(again.exit_code, 2) << again.output;
  EXPECT_NE(again.output.find("exists already"), std::string::npos) << again.output;
  std::ifstream after_stream(out);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(after_stream)), {}), before);
  EXPECT_EQ(run_mops(command + " --data-seed 9 --overwrite").exit_code, 0);
}

TEST(DataExport, ClientIdsMustCoverEveryTrainingExample) {
  TokenizedSplit split;
  split.tasks = {"a"};
  split.train.resize(2);
  EXPECT_NE(error_of([&] { examples_jsonl(split, {0}); }).find("1 client ids for 2 training examples"), std::string::npos);
}

}  // namespace
}  // namespace mops
