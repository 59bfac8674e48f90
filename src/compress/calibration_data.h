// Calibration sequences for one-shot compression: the training examples of the calibration
// source, packed end to end (each BOS ... EOS) into one token stream, cut into
// non-overlapping windows of `length` tokens, of which `samples` are drawn by a seeded
// shuffle. Test examples never enter.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "instruction_format.h"

namespace mops {

// -> (N = samples, T = length) int64
torch::Tensor calibration_windows(const std::vector<TokenizedExample>& train, int samples, int length, uint64_t seed);

}  // namespace mops
