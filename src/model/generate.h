// Text generation with a KV cache: greedy or temperature + nucleus (top-p) sampling from a
// SeededRandom stream (the same draws on every machine). What computes the logits is a
// Decoder: the backbone alone (BackboneDecoder, here) or the backbone with trained prompts
// (PromptedDecoder, src/prompts/prompted_forward.h).
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

// Every decoder's prompt has at least one token id (the first new id is predicted from the last).
void require_prompt_ids(const std::vector<int64_t>& prompt_ids);

// One sequence decoded step by step; it holds its own KV cache.
class Decoder {
 public:
  virtual ~Decoder() = default;
  // The prompt's ids through the model: the logits (V) that predict the first new id.
  virtual torch::Tensor prefill() = 0;
  // One more id: the logits (V) that predict the next.
  virtual torch::Tensor step(int64_t id) = 0;
  // Positions the prompt takes in the longest layer (prompt vectors and ids): the context used.
  virtual int64_t prompt_length() const = 0;
  virtual int64_t context_length() const = 0;  // the model's max_seq_len
};

// The backbone without prompts.
class BackboneDecoder : public Decoder {
 public:
  BackboneDecoder(Llama model, std::vector<int64_t> prompt_ids);
  torch::Tensor prefill() override;
  torch::Tensor step(int64_t id) override;
  int64_t prompt_length() const override { return int64_t(prompt_ids_.size()); }
  int64_t context_length() const override { return model_->config().max_seq_len; }

 private:
  Llama model_;
  std::vector<int64_t> prompt_ids_;
  KVCache cache_;
};

GenerationResult generate(Decoder& decoder, const SamplingOptions& options);
// The backbone alone on `prompt_ids`.
GenerationResult generate(Llama& model, const std::vector<int64_t>& prompt_ids, const SamplingOptions& options);

// Picks the next id from logits (V) as the options say; `random` is a uniform draw in [0, 1).
int64_t pick_token(const torch::Tensor& logits, const SamplingOptions& options, double random);

}  // namespace mops
