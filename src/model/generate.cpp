#include "generate.h"

#include <chrono>

#include "errors.h"
#include "seeded_random.h"

namespace mops {

int64_t pick_token(const torch::Tensor& logits, const SamplingOptions& options, double random) {
  if (options.greedy) return logits.argmax().item<int64_t>();
  auto probs = torch::softmax(logits.to(torch::kCPU, torch::kFloat64) / options.temperature, -1);  // (V)
  auto sorted = probs.sort(/*dim=*/-1, /*descending=*/true);
  auto p = std::get<0>(sorted), order = std::get<1>(sorted);  // (V), (V)
  auto pa = p.accessor<double, 1>();
  // Nucleus: the smallest prefix of the sorted distribution whose mass reaches top_p.
  double kept_mass = 0;
  int64_t kept = 0;
  while (kept < p.size(0) && (kept == 0 || kept_mass < options.top_p)) kept_mass += pa[kept++];
  double target = random * kept_mass, running = 0;
  for (int64_t i = 0; i < kept; ++i) {
    running += pa[i];
    if (target < running) return order[i].item<int64_t>();
  }
  return order[kept - 1].item<int64_t>();
}

void require_prompt_ids(const std::vector<int64_t>& prompt_ids) {
  MOPS_CHECK(!prompt_ids.empty(), "generation needs at least one prompt token id");
}

BackboneDecoder::BackboneDecoder(Llama model, std::vector<int64_t> prompt_ids)
    : model_(std::move(model)), prompt_ids_(std::move(prompt_ids)) {
  require_prompt_ids(prompt_ids_);
}

torch::Tensor BackboneDecoder::prefill() {
  return model_->forward(torch::tensor(prompt_ids_, torch::kLong).unsqueeze(0), &cache_)[0][-1];  // (V)
}

torch::Tensor BackboneDecoder::step(int64_t id) {
  return model_->forward(torch::tensor({id}, torch::kLong).unsqueeze(0), &cache_)[0][-1];  // (V)
}

GenerationResult generate(Decoder& decoder, const SamplingOptions& options) {
  MOPS_CHECK(options.greedy || options.temperature > 0,
             "--temperature = " << options.temperature << " must be positive (or use --greedy)");
  MOPS_CHECK(options.greedy || (options.top_p > 0 && options.top_p <= 1),
             "--top-p = " << options.top_p << " is outside (0, 1]");
  MOPS_CHECK(options.max_new_tokens >= 0, "--max-new-tokens must be >= 0");
  const int64_t limit = decoder.context_length();
  int64_t length = decoder.prompt_length();
  MOPS_CHECK(length <= limit, "the prompt takes " << length << " positions (prompt vectors included), more than the "
                                                  << "model's context of " << limit);
  torch::NoGradGuard no_grad;
  const auto start = std::chrono::steady_clock::now();
  SeededRandom random(options.seed);
  GenerationResult result;
  result.stop_reason = "max-new-tokens";
  auto logits = decoder.prefill();  // (V)
  for (int i = 0; i < options.max_new_tokens; ++i) {
    const int64_t next = pick_token(logits, options, random.uniform());
    result.ids.push_back(next);
    if (next == options.stop_id) {
      result.stop_reason = "stop id";
      break;
    }
    if (length >= limit) {
      result.stop_reason = "context full";
      break;
    }
    if (i + 1 == options.max_new_tokens) break;
    logits = decoder.step(next);
    ++length;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

GenerationResult generate(Llama& model, const std::vector<int64_t>& prompt_ids, const SamplingOptions& options) {
  BackboneDecoder decoder(model, prompt_ids);
  return generate(decoder, options);
}

}  // namespace mops
