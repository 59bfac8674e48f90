// The MoPs gate, all of it: what it reads, what it computes and how it acts.
//   reads:    x, the mean of the hidden states over an example's question tokens (instruction +
//             context) at the input of the gate layer (MopConfig::gate_layer: L_mid, as in the
//             paper, or a layer below it); the lower half computes it (prompted_forward.h);
//   computes: z = W2 relu(W1 x + b1) + b2, the logits over E experts, and G = softmax(z / tau),
//             tau the temperature (1 as in the paper; > 1 softer, < 1 sharper routing); with top-k
//             routing (k < E; Shazeer et al. 2017) only the k largest logits enter the softmax and
//             the other experts get 0; in training, Gaussian noise may be added to z first
//             (prompt_training.h, TrainOptions::gate_noise; fixed scale, not Shazeer's learned one);
//   acts:     as one weight per mid prompt column, G_e on each of expert e's P columns (`paper`,
//             as Algorithm 1 writes it) or E * G_e (`experts`: a uniform gate is then exactly the
//             prompt baseline). The backbone multiplies the attention probabilities of those
//             columns by them, in every head of every layer >= L_mid (llama.h, LayerRun).
// A control takes the gate's place with --gate-route hash, a nearest-centroid rule with --gate-route
// knn (GateRoute below).
//
// Letters: B batch, T tokens, C width, E experts, P prompts per expert.
#pragma once
#include <torch/torch.h>

#include <string>

namespace mops {

enum class GateScale { kPaper, kExperts };
GateScale parse_gate_scale(const std::string& name);  // paper | experts
const char* gate_scale_name(GateScale scale);

// Where G comes from: the gate (`gate`, MoPs), or `hash`, a control that keeps MoPs' prompts,
// capacity per example and scaling but routes without regard to the task (issue 17): each example
// goes wholly (G one-hot) to expert hashed_experts(...) of its question tokens; the gate is then
// neither pretrained nor used.
// `knn` is the reviewers' cheap alternative to a gate (issue 18): per-task prompts chosen by the
// nearest task centroid. In training each example goes wholly to expert (its task mod E); at test
// time to that of the task whose centroid, the mean gate input of its training examples
// (PromptStateImpl::task_centroids), is nearest (Euclidean) to the example's own gate input.
enum class GateRoute { kGate, kHash, kKnn };
GateRoute parse_gate_route(const std::string& name);  // gate | hash | knn
const char* gate_route_name(GateRoute route);
// (B, T) ids and question mask -> (B) int64: each example's expert under `hash` routing,
// stable_hash of the ids at its question positions mod `experts` (padding, response tokens and
// the example's task do not count). On the CPU.
torch::Tensor hashed_experts(const torch::Tensor& ids, const torch::Tensor& question_mask, int experts);
// Gate inputs x (B, C) and centroids (T, C) -> (B) int64 on the CPU: the index of each row's
// nearest centroid (Euclidean; the first of equals).
torch::Tensor nearest_centroids(const torch::Tensor& x, const torch::Tensor& centroids);

class GateImpl : public torch::nn::Module {
 public:
  // Weights and biases uniform in +-1/sqrt(fan-in) (PyTorch's default), from `seed`.
  // top_k: experts kept per example, 0 for all of them (the paper).
  GateImpl(int width, int hidden, int experts, int prompts_per_expert, GateScale scale, double temperature,
           int top_k, uint64_t seed);
  // x: (B, C) the gate's input -> (B, E), rows sum to 1; logit_noise, when given: (B, E), added
  // to the logits (training only).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& logit_noise = {});
  // The logits z (B, E) (gate pretraining's cross-entropy reads these)
  torch::Tensor logits(const torch::Tensor& x);
  // Gate output (B, E) -> the weights of the E * P mid prompt columns (B, E * P).
  torch::Tensor column_weights(const torch::Tensor& gate) const;
  torch::nn::Linear w1{nullptr}, w2{nullptr};

 private:
  int experts_, prompts_per_expert_;
  GateScale scale_;
  double temperature_;
  int top_k_;
};
TORCH_MODULE(Gate);

// What the gate did, per example, from its outputs (B, E) -> (B): the entropy -sum_e G_e ln G_e
// in nats (0: one expert; ln E: all alike), and the number of experts holding more than `mass`
// of the weight ("experts used").
torch::Tensor gate_entropy(const torch::Tensor& gate);
constexpr double kExpertUsedMass = 0.1;
torch::Tensor experts_used(const torch::Tensor& gate, double mass = kExpertUsedMass);

// The load-balancing term of SMoP (after Shazeer et al. 2017): the squared coefficient of
// variation of the experts' load, load_e = sum over the batch of G_e, for gate outputs (B, E):
// var(load) / mean(load)^2 (sample variance), 0 when every expert carries the same load. The
// main loop adds it, times --gate-balance, to the training loss.
torch::Tensor load_balance_loss(const torch::Tensor& gate);

// Mean of hidden (B, T, C) over the positions where question_mask (B, T) is 1 -> (B, C).
// An example with no question token is an error (the gate would have nothing to read).
torch::Tensor question_mean(const torch::Tensor& hidden, const torch::Tensor& question_mask);

}  // namespace mops
