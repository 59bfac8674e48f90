#include "gate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>

#include "errors.h"
#include "stable_hash.h"

namespace mops {

GateScale parse_gate_scale(const std::string& name) {
  if (name == "paper") return GateScale::kPaper;
  if (name == "experts") return GateScale::kExperts;
  MOPS_FAIL("--gate-scale '" << name << "' is not one of paper (attention x G_e), experts (attention x E G_e)");
}

const char* gate_scale_name(GateScale scale) { return scale == GateScale::kPaper ? "paper" : "experts"; }

GateRoute parse_gate_route(const std::string& name) {
  if (name == "gate") return GateRoute::kGate;
  if (name == "hash") return GateRoute::kHash;
  if (name == "knn") return GateRoute::kKnn;
  MOPS_FAIL("--gate-route '" << name << "' is not one of gate (the gate's output), hash (a hash of the question), knn "
                                        "(the nearest task centroid)");
}

const char* gate_route_name(GateRoute route) {
  return route == GateRoute::kGate ? "gate" : route == GateRoute::kHash ? "hash" : "knn";
}

torch::Tensor nearest_centroids(const torch::Tensor& x, const torch::Tensor& centroids) {
  const auto distances = torch::cdist(x.to(torch::kFloat64), centroids.to(x.device(), torch::kFloat64));  // (B, T)
  return distances.argmin(1).cpu();                                                                        // (B)
}

torch::Tensor hashed_experts(const torch::Tensor& ids, const torch::Tensor& question_mask, int experts) {
  constexpr uint64_t kRouteSeed = 23;  // apart from the seeds that sample and split the records
  const auto id = ids.to(torch::kCPU, torch::kLong).contiguous();              // (B, T)
  const auto asked = question_mask.to(torch::kCPU, torch::kFloat).contiguous();  // (B, T)
  const auto ids_at = id.accessor<int64_t, 2>();
  const auto asked_at = asked.accessor<float, 2>();
  auto expert = torch::empty({id.size(0)}, torch::kLong);  // (B)
  auto expert_at = expert.accessor<int64_t, 1>();
  for (int64_t b = 0; b < id.size(0); ++b) {
    std::string bytes;  // the question's ids, 8 little-endian bytes each
    for (int64_t t = 0; t < id.size(1); ++t) {
      if (asked_at[b][t] == 0) continue;
      const auto value = uint64_t(ids_at[b][t]);
      for (int k = 0; k < 8; ++k) bytes.push_back(char((value >> (8 * k)) & 0xff));
    }
    expert_at[b] = int64_t(stable_hash(bytes, kRouteSeed) % uint64_t(experts));
  }
  return expert;
}

GateImpl::GateImpl(int width, int hidden, int experts, int prompts_per_expert, GateScale scale, double temperature,
                   int top_k, uint64_t seed)
    : experts_(experts), prompts_per_expert_(prompts_per_expert), scale_(scale), temperature_(temperature), top_k_(top_k) {
  MOPS_CHECK(temperature > 0, "--gate-temperature " << temperature << " must be positive");
  MOPS_CHECK(top_k >= 0 && top_k <= experts, "--gate-top-k " << top_k << " is outside [0, " << experts << "] (0: all experts)");
  w1 = register_module("w1", torch::nn::Linear(width, hidden));
  w2 = register_module("w2", torch::nn::Linear(hidden, experts));
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto* layer : {&w1, &w2}) {
    const double bound = 1.0 / std::sqrt(double((*layer)->weight.size(1)));
    (*layer)->weight.uniform_(-bound, bound, gen);
    (*layer)->bias.uniform_(-bound, bound, gen);
  }
}

torch::Tensor GateImpl::logits(const torch::Tensor& x) {
  return w2(torch::relu(w1(x)));  // (B, E)
}

torch::Tensor GateImpl::forward(const torch::Tensor& x, const torch::Tensor& logit_noise) {
  auto z = logits(x);  // (B, E)
  if (logit_noise.defined()) z = z + logit_noise.to(z.device(), z.scalar_type());
  if (top_k_ > 0 && top_k_ < experts_) {
    const auto kept = std::get<1>(z.topk(top_k_, 1));  // (B, k)
    z = torch::full_like(z, -std::numeric_limits<double>::infinity()).scatter(1, kept, z.gather(1, kept));
  }
  return torch::softmax(z / temperature_, -1);  // (B, E); experts outside the top k: exactly 0
}

torch::Tensor GateImpl::column_weights(const torch::Tensor& gate) const {
  auto weights = gate.repeat_interleave(prompts_per_expert_, 1);  // (B, E * P)
  return scale_ == GateScale::kExperts ? weights * double(experts_) : weights;
}

torch::Tensor gate_entropy(const torch::Tensor& gate) {
  return -torch::xlogy(gate, gate).sum(1);  // (B); 0 ln 0 = 0
}

torch::Tensor experts_used(const torch::Tensor& gate, double mass) {
  return (gate > mass).sum(1).to(gate.scalar_type());  // (B)
}

torch::Tensor load_balance_loss(const torch::Tensor& gate) {
  const auto load = gate.sum(0);                          // (E)
  return load.var() / (load.mean().pow(2) + 1e-10);      // ()
}

torch::Tensor question_mean(const torch::Tensor& hidden, const torch::Tensor& question_mask) {
  auto mask = question_mask.to(hidden.device(), hidden.scalar_type());  // (B, T)
  auto counts = mask.sum(1, /*keepdim=*/true);             // (B, 1)
  MOPS_CHECK((counts > 0).all().item<bool>(),
             "an example has no question tokens (empty instruction and context): the gate has nothing to read");
  return (hidden * mask.unsqueeze(-1)).sum(1) / counts;   // (B, C)
}

}  // namespace mops
