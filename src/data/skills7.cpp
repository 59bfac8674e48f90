#include "skills7.h"

#include <algorithm>
#include <functional>

#include "errors.h"
#include "seeded_random.h"

namespace mops {
namespace {

using Words = std::vector<std::string>;

// ---------------------------------------------------------------- lexicon

const Words kNames = {"Mia", "Tom", "Ana", "Leo", "Eva", "Sam", "Ida", "Max", "Zoe", "Ben"};
const Words kFruits = {"apples", "pears", "plums", "figs", "limes", "grapes", "peaches", "cherries"};
const Words kAnimals = {"fox", "horse", "rabbit", "goat", "owl", "bear", "sheep", "duck", "wolf", "deer"};
const Words kVerbs = {"carry", "find", "hide", "eat", "push", "watch", "chase", "lift"};
const Words kThings = {"box", "apple", "stone", "ball", "rope", "bucket", "basket", "stick"};
const Words kPlaces = {"river", "barn", "forest", "garden", "bridge", "hill", "lake", "field"};
const Words kFillers = {"quietly", "really", "today", "usually", "often", "still", "also", "sometimes"};

struct WordPair {
  std::string a, b;
};
const std::vector<WordPair> kHypernyms = {{"dog", "animal"}, {"rose", "flower"}, {"oak", "tree"},
                                          {"hammer", "tool"}, {"trout", "fish"}, {"violin", "instrument"},
                                          {"apple", "fruit"}, {"car", "vehicle"}, {"shirt", "clothing"},
                                          {"eagle", "bird"}, {"carrot", "vegetable"}, {"chair", "furniture"}};
const std::vector<WordPair> kMeronyms = {{"wheel", "car"}, {"leaf", "tree"}, {"petal", "flower"},
                                         {"finger", "hand"}, {"page", "book"}, {"roof", "house"},
                                         {"wing", "bird"}, {"string", "violin"}, {"handle", "hammer"},
                                         {"fin", "fish"}, {"door", "car"}, {"branch", "tree"}};
const std::vector<WordPair> kAntonyms = {{"hot", "cold"}, {"big", "small"}, {"fast", "slow"}, {"open", "closed"},
                                         {"light", "dark"}, {"early", "late"}, {"full", "empty"},
                                         {"happy", "sad"}, {"old", "young"}, {"high", "low"},
                                         {"wet", "dry"}, {"loud", "quiet"}};

// ---------------------------------------------------------------- helpers

std::string join(const Words& words, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) out += (i ? separator : "") + words[i];
  return out;
}

std::vector<int> number_list(SeededRandom& random) {
  std::vector<int> numbers(random.between(3, 6));
  for (int& n : numbers) n = random.between(0, 49);
  return numbers;
}

Words as_text(const std::vector<int>& numbers) {
  Words out;
  for (int n : numbers) out.push_back(std::to_string(n));
  return out;
}

// Distinct items drawn from `pool`.
Words draw_distinct(SeededRandom& random, Words pool, size_t count) {
  random.shuffle(pool);
  pool.resize(std::min(count, pool.size()));
  return pool;
}

InstructionRecord record(std::string task, std::string instruction, std::string context, std::string response) {
  return {std::move(task), std::move(instruction), std::move(context), std::move(response), ""};
}

// ---------------------------------------------------------------- the seven tasks

InstructionRecord add_to_list(SeededRandom& random) {
  const int k = random.between(1, 9);
  const std::string ks = std::to_string(k);
  const auto numbers = number_list(random);
  std::vector<int> added;
  for (int n : numbers) added.push_back(n + k);
  const Words instructions = {"Add " + ks + " to every number in the list.", "Increase each number by " + ks + ".",
                              "Add the integer " + ks + " to each element of the list."};
  return record("add_to_list", random.pick(instructions), join(as_text(numbers), ", "), join(as_text(added), ", "));
}

InstructionRecord numbers_to_words(SeededRandom& random) {
  const auto numbers = number_list(random);
  Words spelled;
  for (int n : numbers) spelled.push_back(number_in_words(n));
  const Words instructions = {"Write each number in words.", "Spell out every number in the list.",
                              "Rewrite the numbers as English words."};
  return record("numbers_to_words", random.pick(instructions), join(as_text(numbers), ", "), join(spelled, ", "));
}

InstructionRecord sort_numbers(SeededRandom& random) {
  const auto numbers = number_list(random);
  auto sorted = numbers;
  std::sort(sorted.begin(), sorted.end());
  const Words instructions = {"Sort the numbers from smallest to largest.", "Put the list in ascending order.",
                              "Arrange these numbers in increasing order."};
  return record("sort_numbers", random.pick(instructions), join(as_text(numbers), ", "), join(as_text(sorted), ", "));
}

InstructionRecord reverse_list(SeededRandom& random) {
  const bool words = random.between(0, 1) == 1;  // numbers or words: the same surfaces as its neighbours
  Words items = words ? draw_distinct(random, kThings, random.between(3, 6)) : as_text(number_list(random));
  Words reversed(items.rbegin(), items.rend());
  const Words instructions = {"Write the list in reverse order.", "Reverse the order of the items.",
                              "List the items backwards, last one first."};
  return record("reverse_list", random.pick(instructions), join(items, ", "), join(reversed, ", "));
}

InstructionRecord essential_words(SeededRandom& random) {
  const Words key = {random.pick(kAnimals), random.pick(kVerbs), random.pick(kThings), random.pick(kPlaces)};
  const std::string question = "Which " + key[0] + " " + random.pick(kFillers) + " can " + key[1] + " the " +
                               key[2] + " near the " + key[3] + "?";
  const Words instructions = {"Pick the essential words of the question.", "Which words of this question matter most?",
                              "List the key words of the question."};
  return record("essential_words", random.pick(instructions), question, join(key, ", "));
}

InstructionRecord fact_answer(SeededRandom& random) {
  const Words names = draw_distinct(random, kNames, 3);
  const Words fruits = draw_distinct(random, kFruits, 3);
  std::vector<int> counts(3);
  std::string facts;
  for (int i = 0; i < 3; ++i) {
    counts[i] = random.between(2, 49);
    facts += names[i] + " has " + std::to_string(counts[i]) + " " + fruits[i] + ". ";
  }
  const int asked = random.between(0, 2);
  const bool how_many = random.between(0, 1) == 1;
  const std::string question = how_many ? "How many " + fruits[asked] + " does " + names[asked] + " have?"
                                        : "What does " + names[asked] + " have?";
  const std::string answer = how_many ? std::to_string(counts[asked]) : std::to_string(counts[asked]) + " " + fruits[asked];
  const Words instructions = {"Answer the question using the facts.", "Read the facts and answer the question.",
                              "Use the facts to answer the question."};
  return record("fact_answer", random.pick(instructions), facts + "Question: " + question, answer);
}

InstructionRecord word_relation(SeededRandom& random) {
  const int kind = random.between(0, 3);
  WordPair pair;
  std::string label;
  if (kind == 0) pair = random.pick(kHypernyms), label = "hypernym";
  if (kind == 1) pair = random.pick(kMeronyms), label = "meronym";
  if (kind == 2) pair = random.pick(kAntonyms), label = "antonym";
  if (kind == 3) {  // words from different groups share no relation
    pair = {random.pick(kAntonyms).a, random.pick(kHypernyms).b};
    label = "random";
  }
  const Words instructions = {"Classify the relation between the two words.",
                              "What is the semantic relation of these words?",
                              "Name the relation: hypernym, meronym, antonym or random."};
  return record("word_relation", random.pick(instructions), pair.a + ", " + pair.b, label);
}

using Generator = std::function<InstructionRecord(SeededRandom&)>;
const std::vector<Generator>& generators() {
  static const std::vector<Generator> list = {add_to_list, numbers_to_words, sort_numbers, reverse_list,
                                              essential_words, fact_answer, word_relation};
  return list;
}

}  // namespace

const std::vector<std::string>& skills7_tasks() {
  static const std::vector<std::string> names = {"add_to_list",  "numbers_to_words", "sort_numbers", "reverse_list",
                                                 "essential_words", "fact_answer",   "word_relation"};
  return names;
}

std::string number_in_words(int n) {
  MOPS_CHECK(n >= 0 && n <= 99, "number_in_words: " << n << " is outside [0, 99]");
  static const Words ones = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                             "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                             "seventeen", "eighteen", "nineteen"};
  static const Words tens = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
  if (n < 20) return ones[n];
  return tens[n / 10] + (n % 10 ? "-" + ones[n % 10] : "");
}

std::vector<InstructionRecord> generate_skills7(size_t per_task, uint64_t seed) {
  MOPS_CHECK(per_task > 0, "skills7 needs at least one record per task");
  SeededRandom random(seed);
  std::vector<InstructionRecord> records;
  for (size_t i = 0; i < per_task; ++i) {
    for (const auto& generate : generators()) {
      records.push_back(generate(random));
      records.back().source = "skills7:" + std::to_string(seed) + ":" + std::to_string(records.size() - 1);
    }
  }
  return records;
}

}  // namespace mops
