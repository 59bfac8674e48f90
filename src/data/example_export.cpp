#include "example_export.h"

#include <nlohmann/json.hpp>

#include "errors.h"

namespace mops {
namespace {

void append_line(std::string& out, const std::string& split, size_t index, const TokenizedExample& e,
                 const std::vector<std::string>& tasks, const int* client) {
  nlohmann::ordered_json line;
  line["split"] = split;
  line["index"] = index;
  line["task"] = tasks.at(size_t(e.task));
  line["task_id"] = e.task;
  line["ids"] = e.ids;
  line["question_begin"] = e.question_begin;
  line["question_end"] = e.question_end;
  line["response_begin"] = e.response_begin;
  if (client) line["client"] = *client;
  out += line.dump();
  out += '\n';
}

}  // namespace

std::string examples_jsonl(const TokenizedSplit& split, const std::vector<int>& client_of_train) {
  MOPS_CHECK(client_of_train.empty() || client_of_train.size() == split.train.size(),
             client_of_train.size() << " client ids for " << split.train.size() << " training examples");
  std::string out;
  for (size_t i = 0; i < split.train.size(); ++i) {
    append_line(out, "train", i, split.train[i], split.tasks, client_of_train.empty() ? nullptr : &client_of_train[i]);
  }
  for (size_t i = 0; i < split.test.size(); ++i) append_line(out, split.held_out, i, split.test[i], split.tasks, nullptr);
  return out;
}

}  // namespace mops
