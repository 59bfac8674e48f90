// FedAvg of the trainable prompt tensors (the mid prompts, and the gate for MoPs), weighted by
// each client's number of training examples (McMahan et al. 2017; Flower's FedAvg):
//   global = sum_c n_c * state_c / sum_c n_c      over the round's active clients c.
// Each rank adds its clients into a float64 buffer laid out as [tensors, flattened (N) | sum of
// n_c (1)], in host memory or, where the communicator reduces device memory (nccl), on the
// clients' GPU; the buffers are summed over ranks (Communicator::allreduce_sum); every rank then
// divides and writes the same float32 global state. Summing in float64 makes the result
// independent of how the clients are grouped on ranks up to float64 rounding (~1e-16
// relative), far below the float32 resolution of the state itself.
#pragma once
#include <cstdint>

#include "prompt_state.h"

namespace mops {

// N: how many values the averaged tensors hold.
int64_t averaged_values(PromptState& state);

// sums (at least N + 1 float64 values, on any device): sums[0, N) += examples * state;
// sums[N] += examples.
void add_client(PromptState& client, int64_t examples, torch::Tensor& sums);

// global = sums[0, N) / sums[N]; sums[N] must be > 0.
void assign_average(const torch::Tensor& sums, PromptState& global);

// to's averaged tensors = from's (a client starting its round from the global state).
void copy_averaged(PromptState& from, PromptState& to);

}  // namespace mops
