#include "prompt_state.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "errors.h"

namespace mops {

const std::vector<PromptMethod>& prompt_methods() {
  static const std::vector<PromptMethod> methods = {PromptMethod::kMop,  PromptMethod::kPrompt, PromptMethod::kLora,
                                                    PromptMethod::kIa3,  PromptMethod::kPrefix, PromptMethod::kMpt};
  return methods;
}

PromptMethod parse_prompt_method(const std::string& name) {
  for (auto method : prompt_methods()) {
    if (name == method_name(method)) return method;
  }
  MOPS_FAIL("--method '" << name << "' is not one of mop, prompt, lora, ia3, prefix, mpt (or both, where a command allows it)");
}

const char* method_name(PromptMethod method) {
  switch (method) {
    case PromptMethod::kMop: return "mop";
    case PromptMethod::kPrompt: return "prompt";
    case PromptMethod::kLora: return "lora";
    case PromptMethod::kIa3: return "ia3";
    case PromptMethod::kPrefix: return "prefix";
    case PromptMethod::kMpt: return "mpt";
  }
  return "?";
}

bool uses_mid_prompts(PromptMethod method) {
  return method == PromptMethod::kMop || method == PromptMethod::kPrompt || method == PromptMethod::kMpt;
}

const std::vector<std::string>& lora_target_names() {
  static const std::vector<std::string> names = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};
  return names;
}

bool is_lora_target(const std::string& name) {
  const auto& names = lora_target_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

MopConfig MopConfig::resolved(const ModelConfig& backbone) const {
  MopConfig c = *this;
  const int L = backbone.n_layers;
  if (c.mid_layer < 0) c.mid_layer = L / 2;
  MOPS_CHECK(L >= 2 && c.mid_layer >= 1 && c.mid_layer <= L - 1,
             "--mid-layer " << c.mid_layer << " is outside [1, " << L - 1 << "] for a model of " << L << " layers");
  if (c.gate_layer < 0) c.gate_layer = c.mid_layer;
  MOPS_CHECK(c.gate_layer <= c.mid_layer,
             "--gate-layer " << c.gate_layer << " is outside [0, " << c.mid_layer << "]: the gate reads a layer at or "
                             << "below L_mid = " << c.mid_layer);
  MOPS_CHECK(c.first_prompt_count >= 1, "--first-prompts " << c.first_prompt_count << " must be at least 1");
  MOPS_CHECK(c.experts >= 1 && c.prompts_per_expert >= 1,
             "--experts and --prompts-per-expert must be at least 1 (got " << c.experts << ", " << c.prompts_per_expert << ")");
  MOPS_CHECK(c.gate_hidden >= 1, "--gate-hidden " << c.gate_hidden << " must be at least 1");
  MOPS_CHECK(c.gate_temperature > 0, "--gate-temperature " << c.gate_temperature << " must be positive");
  MOPS_CHECK(c.gate_top_k >= 0 && c.gate_top_k <= c.experts,
             "--gate-top-k " << c.gate_top_k << " is outside [0, " << c.experts << "] for " << c.experts
                             << " experts (0: all)");
  MOPS_CHECK(c.lora_rank >= 1 && c.lora_alpha > 0,
             "--lora-rank " << c.lora_rank << " must be at least 1 and --lora-alpha " << c.lora_alpha << " positive");
  MOPS_CHECK(c.method != PromptMethod::kLora || !c.lora_targets.empty(), "--lora-targets names no matrix");
  MOPS_CHECK(c.lora_dropout >= 0 && c.lora_dropout < 1, "--lora-dropout " << c.lora_dropout << " is outside [0, 1)");
  MOPS_CHECK(c.method != PromptMethod::kMpt || c.task_count >= 1,
             "--method mpt needs the data's tasks (task count " << c.task_count << ")");
  MOPS_CHECK(c.gate_route != GateRoute::kKnn || c.task_count >= 1,
             "--gate-route knn needs the data's tasks (task count " << c.task_count << ")");
  for (const auto& target : c.lora_targets) {
    MOPS_CHECK(is_lora_target(target),
               "--lora-targets: '" << target << "' is not one of wq, wk, wv, wo, w1, w2, w3");
  }
  MOPS_CHECK(c.first_prompt_count + 1 <= backbone.max_seq_len && c.mid_prompt_count() + 1 <= backbone.max_seq_len,
             "prompts (" << c.first_prompt_count << " first, " << c.mid_prompt_count() << " mid) leave no room for tokens in "
                         << "max_seq_len " << backbone.max_seq_len);
  return c;
}

namespace {

// (out, in) of LoRA target `name` in a layer of `m`.
std::pair<int64_t, int64_t> target_shape(const ModelConfig& m, const std::string& name) {
  if (name == "wk" || name == "wv") return {m.kv_dim(), m.dim};
  if (name == "w1" || name == "w3") return {m.hidden_dim, m.dim};
  if (name == "w2") return {m.dim, m.hidden_dim};
  return {m.dim, m.dim};  // wq, wo
}

}  // namespace

PromptStateImpl::PromptStateImpl(const MopConfig& config, const ModelConfig& backbone, uint64_t seed)
    : config_(config), backbone_(backbone) {
  const int width = backbone.dim;
  first_prompts = register_parameter("first_prompts", torch::zeros({config.first_prompt_count, width}), false);
  if (uses_mid_prompts(config.method)) {
    mid_prompts = register_parameter("mid_prompts", torch::zeros({config.mid_prompt_count(), width}));
  }
  if (config.method == PromptMethod::kMpt) {
    task_rows = register_parameter("mpt_task_rows", torch::ones({config.task_count, config.mid_prompt_count()}));
    task_columns = register_parameter("mpt_task_columns", torch::ones({config.task_count, width}));
  }
  if (config.method == PromptMethod::kMop && config.gate_route == GateRoute::kKnn) {
    task_centroids = register_parameter("task_centroids", torch::zeros({config.task_count, width}), false);
  }
  if (config.method == PromptMethod::kMop) {
    gate = register_module("gate", Gate(width, config.gate_hidden, config.experts, config.prompts_per_expert, config.gate_scale,
                                     config.gate_temperature, config.gate_top_k, seed));
  }
  if (uses_mid_prompts(config.method)) return;
  adapters.resize(size_t(backbone.n_layers));
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (int l = config.first_adapted_layer(); l < backbone.n_layers; ++l) {
    auto& adapter = adapters[size_t(l)];
    const auto layer = "layer" + std::to_string(l) + "_";
    if (config.method == PromptMethod::kPrefix) {  // as many virtual tokens as mid prompts
      const int64_t N = config.mid_prompt_count();
      adapter.prefix_keys = register_parameter(layer + "prefix_keys", torch::randn({N, backbone.kv_dim()}, gen));
      adapter.prefix_values = register_parameter(layer + "prefix_values", torch::randn({N, backbone.kv_dim()}, gen));
      continue;
    }
    if (config.method == PromptMethod::kIa3) {
      adapter.key_scale = register_parameter(layer + "ia3_keys", torch::ones({backbone.kv_dim()}));
      adapter.value_scale = register_parameter(layer + "ia3_values", torch::ones({backbone.kv_dim()}));
      adapter.hidden_scale = register_parameter(layer + "ia3_hidden", torch::ones({backbone.hidden_dim}));
      continue;
    }
    for (const auto& name : lora_target_names()) {  // in this fixed order, whatever the option's
      if (std::find(config.lora_targets.begin(), config.lora_targets.end(), name) == config.lora_targets.end()) continue;
      const auto [out, in] = target_shape(backbone, name);
      auto& update = adapter.update(name);
      const double bound = 1.0 / std::sqrt(double(in));
      update.a = register_parameter(layer + name + "_lora_a", torch::empty({config.lora_rank, in}).uniform_(-bound, bound, gen));
      update.b = register_parameter(layer + name + "_lora_b", torch::zeros({out, int64_t(config.lora_rank)}));
      update.scale = config.lora_alpha / config.lora_rank;
      update.dropout = config.lora_dropout;
    }
  }
}

torch::Tensor PromptStateImpl::mid_prompts_for(const std::vector<int>& tasks, const torch::Tensor& like) const {
  const auto shared = mid_prompts.to(like.scalar_type());  // (E * P, C)
  if (config_.method != PromptMethod::kMpt) return shared;
  MOPS_CHECK(int64_t(tasks.size()) == like.size(0),
             "--method mpt needs each example's task id (" << tasks.size() << " for " << like.size(0) << " examples)");
  for (int t : tasks) {
    MOPS_CHECK(t >= 0 && t < config_.task_count,
               "--method mpt: task id " << t << " is outside the " << config_.task_count << " tasks it was trained on");
  }
  const auto index = torch::tensor(std::vector<int64_t>(tasks.begin(), tasks.end())).to(like.device());  // (B)
  const auto u = task_rows.index_select(0, index).to(like.scalar_type());                              // (B, E * P)
  const auto v = task_columns.index_select(0, index).to(like.scalar_type());                           // (B, C)
  return shared.unsqueeze(0) * u.unsqueeze(2) * v.unsqueeze(1);                                        // (B, E * P, C)
}

std::vector<torch::Tensor> PromptStateImpl::prompt_tensors() {
  std::vector<torch::Tensor> tensors;
  for (auto* t : {&mid_prompts, &task_rows, &task_columns}) {
    if (t->defined()) tensors.push_back(*t);
  }
  return tensors;
}

std::vector<torch::Tensor> PromptStateImpl::trained() {
  auto tensors = prompt_tensors();
  if (gate && config_.gate_route == GateRoute::kGate) {  // hash and knn do not use it
    for (auto& p : gate->parameters()) tensors.push_back(p);
  }
  for (auto& t : adapter_tensors()) tensors.push_back(t);
  return tensors;
}

std::vector<torch::Tensor> PromptStateImpl::adapter_tensors() {
  std::vector<torch::Tensor> tensors;
  for (auto& adapter : adapters) {
    for (auto* t : {&adapter.wq.a, &adapter.wq.b, &adapter.wk.a, &adapter.wk.b, &adapter.wv.a, &adapter.wv.b,
                    &adapter.wo.a, &adapter.wo.b, &adapter.w1.a, &adapter.w1.b, &adapter.w2.a, &adapter.w2.b,
                    &adapter.w3.a, &adapter.w3.b, &adapter.key_scale, &adapter.value_scale, &adapter.hidden_scale,
                    &adapter.prefix_keys, &adapter.prefix_values}) {
      if (t->defined()) tensors.push_back(*t);
    }
  }
  return tensors;
}

int64_t PromptStateImpl::trained_values() {
  int64_t n = 0;
  for (const auto& t : trained()) n += t.numel();
  return n;
}

}  // namespace mops
