// A batch of tokenised instruction examples, right-padded to one length, with the masks the
// losses and the gate need.
//
// Letters: B examples, T tokens (the longest example), V vocabulary.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "instruction_format.h"

namespace mops {

struct ExampleBatch {
  torch::Tensor ids;            // (B, T) int64, padded with 0
  torch::Tensor response_mask;  // (B, T - 1) float: 1 where position t predicts response token t + 1
  torch::Tensor question_mask;  // (B, T) float: 1 on the instruction and context tokens
  std::vector<int> tasks;       // (B) task ids
};

ExampleBatch make_batch(const std::vector<TokenizedExample>& examples, const std::vector<size_t>& indices);
ExampleBatch make_batch(const std::vector<TokenizedExample>& examples, size_t begin, size_t end);

// Per example: summed negative log-likelihood of its response tokens (B) and their count (B).
std::pair<torch::Tensor, torch::Tensor> response_nll_per_example(const torch::Tensor& logits, const ExampleBatch& batch);
// Mean negative log-likelihood over all response tokens of the batch (a scalar).
torch::Tensor response_loss(const torch::Tensor& logits, const ExampleBatch& batch);

}  // namespace mops
