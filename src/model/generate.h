// Text generation with a KV cache that keeps the prompt prefix: greedy or temperature +
// nucleus (top-p) sampling from a SeededRandom stream (the same draws on every machine).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llama.h"

namespace mops {

struct SamplingOptions {
  int max_new_tokens = 64;
  bool greedy = false;
  double temperature = 1.0;  // > 0
  double top_p = 1.0;        // in (0, 1]
  uint64_t seed = 0;
  int64_t stop_id = -1;      // stop after this id is generated (e.g. EOS); -1 = never
};

struct GenerationResult {
  std::vector<int64_t> ids;  // generated ids only, the stop id included if it was produced
  std::string stop_reason;   // "max-new-tokens", "stop id", "context full"
  double seconds = 0;
};

GenerationResult generate(Llama& model, const std::vector<int64_t>& prompt_ids,
                          const SamplingOptions& options, const PromptPlan& plan = {});

// Picks the next id from logits (V) as the options say; `random` is a uniform draw in [0, 1).
int64_t pick_token(const torch::Tensor& logits, const SamplingOptions& options, double random);

}  // namespace mops
