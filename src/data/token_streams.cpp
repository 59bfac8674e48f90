#include "token_streams.h"

#include "errors.h"
#include "stable_hash.h"

namespace mops {

void append_examples(std::vector<int64_t>& stream, std::vector<uint8_t>& targets,
                     const std::vector<TokenizedExample>& examples, bool responses_only) {
  for (const auto& e : examples) {
    stream.insert(stream.end(), e.ids.begin(), e.ids.end());
    for (int64_t t = 0; t < int64_t(e.ids.size()); ++t) targets.push_back(!responses_only || t >= e.response_begin);
  }
}

TokenStreams build_token_streams(const std::vector<std::string>& documents, const Tokenizer& tokenizer,
                                 double test_fraction, uint64_t seed) {
  MOPS_CHECK(test_fraction >= 0 && test_fraction < 1,
             "--test-fraction = " << test_fraction << " is outside [0, 1)");
  MOPS_CHECK(tokenizer.bos_id() >= 0 && tokenizer.eos_id() >= 0,
             "the tokenizer has no BOS/EOS ids; train one with `mops tokenizer train`");
  TokenStreams streams;
  for (const auto& document : documents) {
    const bool test = double(stable_hash(document, seed) % 1000000) < test_fraction * 1e6;
    auto& stream = test ? streams.test : streams.train;
    auto& targets = test ? streams.test_targets : streams.train_targets;
    stream.push_back(tokenizer.bos_id());
    for (int id : tokenizer.encode(document)) stream.push_back(id);
    stream.push_back(tokenizer.eos_id());
    targets.resize(stream.size(), 1);
  }
  return streams;
}

}  // namespace mops
