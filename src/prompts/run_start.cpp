#include "run_start.h"

#include <algorithm>
#include <iomanip>
#include <iostream>

#include "prompt_state_io.h"
#include "prompted_forward.h"

namespace mops {

int prompt_positions(const PromptRunSettings& settings) {
  return std::max(settings.p0.count, settings.mop.experts * settings.mop.prompts_per_expert);
}

torch::Tensor load_or_pretrain_first_prompts(const FirstPromptSettings& p0, uint64_t seed, Llama& model,
                            const std::vector<TokenizedExample>& train) {
  if (!p0.file.empty()) return load_first_prompts(p0.file, model->config().dim);
  auto state = first_prompt_state(model, random_prompts(model, p0.count, seed + 100));
  TrainOptions o;
  o.steps = p0.steps;
  o.lr = p0.lr;
  o.batch_size = p0.batch_size;
  o.seed = seed + 101;
  const double loss = pretrain_first_prompts(model, state, train, o);
  std::cerr << "P0: " << p0.count << " prompts pretrained for " << o.steps << " steps, last loss " << std::fixed
            << std::setprecision(4) << loss << "\n";
  return state->first_prompts.detach().clone();  // (K0, C)
}

MopConfig method_config(const PromptRunSettings& settings, PromptMethod method, int first_prompt_count,
                        int task_count, const ModelConfig& model) {
  MopConfig c = settings.mop;
  c.method = method;
  c.first_prompt_count = first_prompt_count;
  c.task_count = task_count;
  return c.resolved(model);
}

PromptState initial_prompt_state(const PromptRunSettings& settings, PromptMethod method, Llama& model,
                                 const torch::Tensor& p0, const TokenizedSplit& data) {
  const auto config = method_config(settings, method, int(p0.size(0)), int(data.tasks.size()), model->config());
  PromptState state(config, model->config(), settings.seed + 11);
  state->to(model->device());  // made on the CPU, so that the gate's start is the same on every device
  {
    torch::NoGradGuard no_grad;
    state->first_prompts.copy_(p0);  // (K0, C)
  }
  init_mid_prompts(model, state, data.train, settings.mid_init, settings.seed + 7);
  return state;
}

void pretrain_gate_for_run(const PromptRunSettings& settings, Llama& model, PromptState& state,
                           const std::vector<TokenizedExample>& train, ActivationCache& cache) {
  if (state->config().gate_route == GateRoute::kHash) {
    std::cerr << "gate pretraining skipped: --gate-route hash routes each example by a hash of its question, "
                 "not by the gate\n";
    return;
  }
  auto options = settings.train;
  options.lower_cache = &cache;
  if (state->config().gate_route == GateRoute::kKnn) {
    const double accuracy = fit_task_centroids(model, state, train, options);
    std::cerr << "gate pretraining replaced: --gate-route knn fitted " << state->config().task_count
              << " task centroids on " << train.size() << " training examples; nearest centroid = task on " << std::fixed
              << std::setprecision(1) << 100 * accuracy << " % of them\n";
    return;
  }
  if (settings.gate_pretrain_steps == 0) return;
  options.steps = settings.gate_pretrain_steps;
  options.batch_size = std::max(options.batch_size, 8);
  const double accuracy = pretrain_gate(model, state, train, options);
  std::cerr << "gate pretrained for " << options.steps << " steps: expert = task on " << std::fixed
            << std::setprecision(1) << 100 * accuracy << " % of a training batch\n";
}

EvaluationReport evaluate_p0_only(Llama& model, const torch::Tensor& p0, const std::vector<TokenizedExample>& test,
                                  const std::vector<std::string>& tasks, int batch_size) {
  auto state = first_prompt_state(model, p0);
  return evaluate_perplexity(test, tasks, batch_size,
                             [&](const ExampleBatch& b) { return first_prompts_forward(model, state, b.ids); });
}

std::unique_ptr<ActivationCache> make_activation_cache(const std::string& spec, const torch::Device& device, bool log) {
  const auto budget = activation_cache_budget(spec, device);
  auto cache = std::make_unique<ActivationCache>(budget.device_bytes, budget.host_bytes);
  if (log) {
    std::cerr << "activation cache: ";
    if (cache->budget_bytes() == 0) std::cerr << "off";
    else std::cerr << "up to " << cache->budget_bytes() / (1024 * 1024) << " MiB of lower-half states on " << device.str();
    if (cache->host_budget_bytes() > 0) std::cerr << ", then up to " << cache->host_budget_bytes() / (1024 * 1024) << " MiB in host memory";
    std::cerr << "\n";
  }
  return cache;
}

}  // namespace mops
