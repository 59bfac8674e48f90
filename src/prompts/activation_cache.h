// Lower-half activation cache. The hidden states a training example reaches at the input of
// L_mid, and the gate's input (prompted_forward.h), depend only on the frozen backbone and the
// frozen P0, so they are computed once and
// reused by every later step, epoch, round and method that sees the example; only the upper
// half (with autograd) runs again. Memory is bounded: states are kept on the backbone's device
// up to a budget, then (on a GPU) in host memory up to a second budget, from which they are
// copied back when used; examples that fit in neither are computed each time, as without the
// cache.
//
// Letters: B batch, T tokens (the batch's longest example), K0 first prompts, C width.
#pragma once
#include <torch/torch.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "example_batch.h"
#include "llama.h"
#include "prompt_state.h"
#include "prompted_forward.h"

namespace mops {

class ActivationCache {
 public:
  // Keeps at most `budget_bytes` of states on the backbone's device (0: no cache at all) and,
  // when that is full and the device is not the CPU, at most `host_bytes` more in host memory.
  explicit ActivationCache(int64_t budget_bytes, int64_t host_bytes = 0);

  // The lower half of examples[indices], batched as make_batch(examples, indices): states
  // (B, K0 + T, C), each example's own positions, zeros at its padding (which no real position
  // attends to), and the gate's input (B, C), kept for both methods so that the baseline and
  // MoPs share the cache. An example not held is computed alone and unpadded, so the states
  // never depend on the cache's history, budget or batch-mates; only with budget 0 is the batch
  // computed as one padded pass, as without a cache. Examples are told apart by their address
  // (and length), so `examples` must not change while the cache is in use. A different
  // backbone, P0, L_mid, gate layer or gate route empties it.
  LowerHalf lower(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& examples,
                  const std::vector<size_t>& indices);

  int64_t budget_bytes() const { return budget_; }
  int64_t host_budget_bytes() const { return host_budget_; }
  int64_t bytes() const { return bytes_; }            // on the backbone's device
  int64_t host_bytes() const { return host_bytes_; }  // in host memory (overflow of a GPU's budget)
  int64_t cached_examples() const { return int64_t(states_.size()); }
  int64_t hits() const { return hits_; }          // example lookups served from the cache
  int64_t computed() const { return computed_; }  // examples run through the lower half
  std::string describe() const;                    // one line: budget, use, hits

 private:
  void empty_if_stale(Llama& backbone, PromptState& state);
  // One example's lower half: states (1, K0 + T_i, C), gate input (1, C).
  LowerHalf states_of(Llama& backbone, PromptState& state, const TokenizedExample& example);
  void store(const TokenizedExample* example, const LowerHalf& lower);

  int64_t budget_, host_budget_;
  int64_t bytes_ = 0, host_bytes_ = 0;
  int64_t hits_ = 0;
  int64_t computed_ = 0;
  const void* backbone_ = nullptr;  // the backbone the states came from
  int mid_layer_ = -1;              // the layer they were taken at
  int gate_layer_ = -1;             // and the gate's input
  GateRoute gate_route_ = GateRoute::kGate;  // whether the hashed experts were kept with them
  torch::Tensor first_prompts_;     // (K0, C): the P0 they came from
  std::unordered_map<const TokenizedExample*, LowerHalf> states_;  // (1, K0 + T_i, C) and (1, C) each
};

struct CacheBudget {
  int64_t device_bytes = 0;  // on the backbone's device
  int64_t host_bytes = 0;    // overflow in host memory (GPU only)
};
// The budget for --activation-cache on `device`: "auto" (a quarter of the memory free on it now,
// shared among the ranks that share it; 0 when that is under 64 MiB; on a GPU, a quarter of the
// host's available memory shared among the node's ranks as overflow) or a number of MiB on the
// device, no overflow (0 = off).
CacheBudget activation_cache_budget(const std::string& option, const torch::Device& device);

}  // namespace mops
