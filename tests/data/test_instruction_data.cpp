// The embedded skills7 suite, the prompt template and its spans, truncation, sampling and the
// train/test split.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "build_paths.h"
#include "errors.h"
#include "instruction_dataset.h"
#include "instruction_format.h"
#include "skills7.h"

namespace mops {
namespace {

std::vector<int> parse_numbers(const std::string& text) {
  std::vector<int> numbers;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) numbers.push_back(std::stoi(item));
  return numbers;
}

std::string join_numbers(const std::vector<int>& numbers) {
  std::string out;
  for (size_t i = 0; i < numbers.size(); ++i) out += (i ? ", " : "") + std::to_string(numbers[i]);
  return out;
}

TEST(Skills7, NumbersInWordsByHand) {
  EXPECT_EQ(number_in_words(0), "zero");
  EXPECT_EQ(number_in_words(17), "seventeen");
  EXPECT_EQ(number_in_words(40), "forty");
  EXPECT_EQ(number_in_words(42), "forty-two");
  EXPECT_EQ(number_in_words(99), "ninety-nine");
  EXPECT_THROW(number_in_words(100), Error);
}

TEST(Skills7, SameSeedSameRecordsOtherSeedOthers) {
  const auto a = generate_skills7(20, 7), b = generate_skills7(20, 7), c = generate_skills7(20, 8);
  ASSERT_EQ(a.size(), 140u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].instruction + a[i].context + a[i].response, b[i].instruction + b[i].context + b[i].response);
  }
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i].context == c[i].context;
  EXPECT_LT(same, 40u);  // only the tiny word_relation input space repeats
  // A golden record pins the generator's random stream.
  EXPECT_EQ(a[0].task, "add_to_list");
  EXPECT_EQ(generate_skills7(1, 1)[0].context, "40, 35, 11, 48, 45, 33");
}

TEST(Skills7, EveryAnswerIsRightWhenRecomputed) {
  std::map<std::string, int> per_task;
  for (const auto& r : generate_skills7(50, 3)) {
    ++per_task[r.task];
    if (r.task == "add_to_list") {
      const int k = std::stoi(r.instruction.substr(r.instruction.find_first_of("0123456789")));
      auto numbers = parse_numbers(r.context);
      for (int& n : numbers) n += k;
      EXPECT_EQ(r.response, join_numbers(numbers)) << r.instruction << " | " << r.context;
    } else if (r.task == "sort_numbers") {
      auto numbers = parse_numbers(r.context);
      std::sort(numbers.begin(), numbers.end());
      EXPECT_EQ(r.response, join_numbers(numbers));
    } else if (r.task == "numbers_to_words") {
      std::string expected;
      for (int n : parse_numbers(r.context)) expected += (expected.empty() ? "" : ", ") + number_in_words(n);
      EXPECT_EQ(r.response, expected);
    } else if (r.task == "word_relation") {
      EXPECT_TRUE(std::set<std::string>({"hypernym", "meronym", "antonym", "random"}).count(r.response)) << r.response;
    } else if (r.task == "fact_answer") {
      EXPECT_NE(r.context.find(r.response), std::string::npos) << "the answer comes from the facts";
    }
  }
  ASSERT_EQ(per_task.size(), 7u);
  for (const auto& [task, count] : per_task) EXPECT_EQ(count, 50) << task;
}

TEST(Skills7, InputSurfacesOverlapAcrossTasks) {
  // The same kind of number list feeds four tasks: only the instruction tells them apart.
  std::set<std::string> number_list_tasks;
  for (const auto& r : generate_skills7(30, 4)) {
    if (r.context.find_first_not_of("0123456789, ") == std::string::npos) number_list_tasks.insert(r.task);
  }
  EXPECT_EQ(number_list_tasks, std::set<std::string>({"add_to_list", "numbers_to_words", "sort_numbers", "reverse_list"}));
}

// A tokenizer trained once for the template tests.
const Tokenizer& skills_tokenizer() {
  static const Tokenizer tokenizer = [] {
    const std::string dir = MOPS_TEST_WORK_DIR "/instruction_data";
    std::filesystem::create_directories(dir);
    std::vector<std::string> documents;
    for (const auto& r : generate_skills7(100, 1)) documents.push_back(format_prompt(r) + r.response);
    TokenizerTrainOptions options;
    options.vocab_size = 400;
    return Tokenizer::load(train_tokenizer(documents, dir + "/tok", options));
  }();
  return tokenizer;
}

std::string decode_span(const std::vector<int64_t>& ids, int64_t begin, int64_t end) {
  return skills_tokenizer().decode(std::vector<int>(ids.begin() + begin, ids.begin() + end));
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

TEST(PromptTemplate, SpansCoverQuestionAndResponseExactly) {
  const auto& tok = skills_tokenizer();
  InstructionRecord r{"fact_answer", "Answer the question using the facts.", "Mia has 3 figs. Question: What does Mia have?",
                      "3 figs", "test"};
  TruncationCounts counts;
  const auto e = tokenize_example(r, 5, tok, 512, &counts);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->ids.front(), tok.bos_id());
  EXPECT_EQ(e->ids.back(), tok.eos_id());
  EXPECT_EQ(e->task, 5);
  const std::string question = decode_span(e->ids, e->question_begin, e->question_end);
  EXPECT_EQ(trim(question).rfind(r.instruction, 0), 0u) << question;  // starts with the instruction
  EXPECT_NE(question.find(r.context), std::string::npos) << question;
  EXPECT_EQ(question.find("Response"), std::string::npos) << question;
  EXPECT_EQ(trim(decode_span(e->ids, e->response_begin, int64_t(e->ids.size()) - 1)), r.response);
  const std::string before_question = decode_span(e->ids, 0, e->question_begin);
  EXPECT_NE(before_question.find("### Instruction:"), std::string::npos) << before_question;
  const std::string between = decode_span(e->ids, e->question_end, e->response_begin);
  EXPECT_NE(between.find("### Response:"), std::string::npos) << between;
  EXPECT_EQ(counts.truncated + counts.dropped, 0u);
  // The prompt for generation is the example up to the response.
  const auto prompt = tokenize_prompt(r, tok);
  EXPECT_EQ(prompt.ids, std::vector<int64_t>(e->ids.begin(), e->ids.begin() + e->response_begin));
  EXPECT_EQ(prompt.question_begin, e->question_begin);
  EXPECT_EQ(prompt.question_end, e->question_end);
}

TEST(PromptTemplate, NoContextMeansNoInputBlock) {
  InstructionRecord r{"t", "Name a colour.", "", "blue", "test"};
  EXPECT_EQ(format_prompt(r), "### Instruction:\nName a colour.\n\n### Response:\n");
  const auto e = tokenize_example(r, 0, skills_tokenizer(), 512, nullptr);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(decode_span(e->ids, 0, e->response_begin).find("Input"), std::string::npos);
}

TEST(PromptTemplate, LongContextsAreCutAndImpossibleExamplesDropped) {
  const auto& tok = skills_tokenizer();
  std::string long_context;
  for (int i = 0; i < 200; ++i) long_context += std::to_string(i % 50) + ", ";
  InstructionRecord r{"t", "Sort the numbers.", long_context, "1, 2", "test"};
  TruncationCounts counts;
  const auto cut = tokenize_example(r, 0, tok, 64, &counts);
  ASSERT_TRUE(cut.has_value());
  EXPECT_EQ(cut->ids.size(), 64u);
  EXPECT_EQ(counts.truncated, 1u);
  EXPECT_EQ(trim(decode_span(cut->ids, cut->response_begin, int64_t(cut->ids.size()) - 1)), "1, 2");
  const auto dropped = tokenize_example(r, 0, tok, 12, &counts);
  EXPECT_FALSE(dropped.has_value());
  EXPECT_EQ(counts.dropped, 1u);
  InstructionRecord empty_instruction{"t", "", "x", "y", "file.jsonl:3"};
  EXPECT_THROW(tokenize_example(empty_instruction, 0, tok, 64, nullptr), Error);
}

TEST(DatasetSplit, DeterministicDisjointAndAboutTheAskedFraction) {
  DatasetOptions o;
  o.skills7_per_task = 300;
  o.seed = 11;
  const auto a = load_instruction_dataset(o), b = load_instruction_dataset(o);
  ASSERT_EQ(a.train.size(), b.train.size());
  for (size_t i = 0; i < a.train.size(); ++i) EXPECT_EQ(a.train[i].context, b.train[i].context);
  EXPECT_EQ(a.train.size() + a.test.size(), 2100u);
  const double fraction = double(a.test.size()) / 2100.0;
  EXPECT_NEAR(fraction, 0.1, 0.03);
  std::set<uint64_t> train_hashes;
  for (const auto& r : a.train) train_hashes.insert(record_hash(r, 0));
  for (const auto& r : a.test) {
    EXPECT_EQ(train_hashes.count(record_hash(r, 0)), 0u) << "a test record also in train: " << r.context;
  }
  EXPECT_EQ(a.tasks, skills7_tasks());
}

// A validation split comes out of the training records only: the test records are the same with
// or without it (and not held out under it), validation and the remaining training records
// together are the training records without it, and validation is about the asked share of them.
TEST(DatasetSplit, ValidationIsCarvedFromTheTrainingRecordsAndReplacesTheTestSplit) {
  DatasetOptions o;
  o.skills7_per_task = 300;
  o.seed = 5;
  const auto plain = load_instruction_dataset(o);
  o.validation_fraction = 0.2;
  const auto carved = load_instruction_dataset(o);
  EXPECT_EQ(plain.held_out, "test");
  EXPECT_EQ(carved.held_out, "validation");
  auto hashes = [](const std::vector<InstructionRecord>& records) {
    std::set<uint64_t> out;
    for (const auto& r : records) out.insert(record_hash(r, 0));
    return out;
  };
  const auto train = hashes(plain.train), test = hashes(plain.test);
  const auto rest = hashes(carved.train), validation = hashes(carved.test);
  std::set<uint64_t> together = rest;
  together.insert(validation.begin(), validation.end());
  EXPECT_EQ(together, train);
  for (auto h : validation) EXPECT_EQ(test.count(h), 0u) << "a test record held out as validation";
  EXPECT_EQ(rest.size() + validation.size(), train.size());
  EXPECT_NEAR(double(validation.size()) / double(train.size()), 0.2, 0.03);
  o.validation_fraction = 1.0;
  EXPECT_THROW(load_instruction_dataset(o), Error);
}

TEST(DatasetSplit, SamplingKeepsTheSameRecordsWhateverTheirOrder) {
  DatasetOptions o;
  o.skills7_per_task = 200;
  o.samples_per_source = 500;
  const auto sampled = load_instruction_dataset(o);
  EXPECT_EQ(sampled.train.size() + sampled.test.size(), 500u);
  // The sample depends on the records' text only: a shuffled copy of the source gives the same set.
  auto records = generate_skills7(200, 0);
  std::reverse(records.begin(), records.end());
  std::set<uint64_t> kept, kept_from_reversed;
  for (const auto& r : sampled.train) kept.insert(record_hash(r, 1));
  for (const auto& r : sampled.test) kept.insert(record_hash(r, 1));
  std::vector<std::pair<uint64_t, uint64_t>> by_hash;
  for (const auto& r : records) by_hash.emplace_back(record_hash(r, 0), record_hash(r, 1));
  std::sort(by_hash.begin(), by_hash.end());
  for (size_t i = 0; i < 500; ++i) kept_from_reversed.insert(by_hash[i].second);
  EXPECT_EQ(kept, kept_from_reversed);
}

TEST(DatasetSplit, SourcesByKindAndClearErrors) {
  DatasetOptions o;
  o.sources = {std::string("dolly:") + MOPS_SHARED_DIR + "/data/dolly-sample.jsonl"};
  o.test_fraction = 0.3;
  const auto dolly = load_instruction_dataset(o);
  EXPECT_EQ(dolly.train.size() + dolly.test.size(), 8u);
  o.sources = {"parquet:/x"};
  EXPECT_THROW(load_instruction_dataset(o), Error);
  o.sources = {"skills7:extra"};
  EXPECT_THROW(load_instruction_dataset(o), Error);
  o.sources = {"skills7"};
  o.test_fraction = 1.5;
  EXPECT_THROW(load_instruction_dataset(o), Error);
}

}  // namespace
}  // namespace mops
