#include "example_batch.h"

#include "errors.h"
#include "precision.h"

namespace mops {

ExampleBatch make_batch(const std::vector<TokenizedExample>& examples, const std::vector<size_t>& indices) {
  MOPS_CHECK(!indices.empty(), "a batch needs at least one example");
  int64_t T = 0;
  for (size_t i : indices) T = std::max<int64_t>(T, int64_t(examples.at(i).ids.size()));
  const int64_t B = int64_t(indices.size());
  ExampleBatch batch;
  batch.ids = torch::zeros({B, T}, torch::kLong);
  batch.response_mask = torch::zeros({B, T - 1});
  batch.question_mask = torch::zeros({B, T});
  auto ids = batch.ids.accessor<int64_t, 2>();
  auto response = batch.response_mask.accessor<float, 2>();
  auto question = batch.question_mask.accessor<float, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& e = examples[indices[b]];
    for (size_t t = 0; t < e.ids.size(); ++t) ids[b][t] = e.ids[t];
    for (size_t t = e.response_begin; t < e.ids.size(); ++t) response[b][t - 1] = 1.0f;
    for (int64_t t = e.question_begin; t < e.question_end; ++t) question[b][t] = 1.0f;
    batch.tasks.push_back(e.task);
  }
  return batch;
}

ExampleBatch make_batch(const std::vector<TokenizedExample>& examples, size_t begin, size_t end) {
  std::vector<size_t> indices;
  for (size_t i = begin; i < end; ++i) indices.push_back(i);
  return make_batch(examples, indices);
}

std::pair<torch::Tensor, torch::Tensor> response_nll_per_example(const torch::Tensor& logits, const ExampleBatch& batch) {
  const auto device = logits.device();
  auto logp = torch::log_softmax(at_least_float32(logits.slice(1, 0, -1)), -1);      // (B, T-1, V), >= float32
  auto target = batch.ids.to(device).slice(1, 1).unsqueeze(-1);                      // (B, T-1, 1)
  auto mask = batch.response_mask.to(device);                                        // (B, T-1)
  auto nll = -(logp.gather(-1, target).squeeze(-1) * mask).sum(1);                   // (B)
  return {nll, mask.sum(1)};
}

torch::Tensor response_loss(const torch::Tensor& logits, const ExampleBatch& batch) {
  auto [nll, counts] = response_nll_per_example(logits, batch);
  return nll.sum() / counts.sum().clamp_min(1);
}

}  // namespace mops
