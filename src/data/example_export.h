// The tokenized examples of a run as JSON Lines, for tools outside mops (issue 19: the PEFT and
// Flower peers in bench/ train on exactly what mops trains on). One object per example, train
// split first, then the held-out split, each in the order mops reads them:
//   {"split": "train" | "test" | "validation", "index": i, "task": NAME, "task_id": t,
//    "ids": [...], "question_begin": a, "question_end": b, "response_begin": r, "client": c}
// `index` counts within the split; `ids` are BOS, prompt, response and EOS (instruction_format.h);
// the loss and the perplexity are over ids[r:], each predicted from the position before it.
// `client` (train lines only) is the federated client the example belongs to, when given.
#pragma once
#include <string>
#include <vector>

#include "tokenized_split.h"

namespace mops {

// client_of_train: empty, or one client id per training example.
std::string examples_jsonl(const TokenizedSplit& split, const std::vector<int>& client_of_train);

}  // namespace mops
