#include "prompt_training.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>

#include "activation_cache.h"
#include "errors.h"
#include "prompted_forward.h"

namespace mops {

BatchSampler::BatchSampler(size_t examples, uint64_t seed) : order_(examples), random_(seed) {
  MOPS_CHECK(examples > 0, "no training examples");
  for (size_t i = 0; i < examples; ++i) order_[i] = i;
  random_.shuffle(order_);
}

std::vector<size_t> BatchSampler::next(int batch_size) {
  std::vector<size_t> batch;
  while (int(batch.size()) < batch_size) {
    if (position_ == order_.size()) {
      random_.shuffle(order_);
      position_ = 0;
    }
    batch.push_back(order_[position_++]);
  }
  return batch;
}

namespace {

void check_finite(const torch::Tensor& loss, int64_t step, const char* what) {
  MOPS_CHECK(std::isfinite(loss.item<double>()),
             what << " loss is " << loss.item<double>() << " at step " << step
                  << "; training stopped before applying it (lower --lr, or check the model for NaN weights)");
}

// (B, K0 + T, C) lower-half states of examples[indices] (batched as `batch`), from the cache when set
// and the lower half is frozen; `dropout_masks` as LayerRun's (LoRA in all layers).
LowerHalf lower_states(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& examples,
                       const std::vector<size_t>& indices, const ExampleBatch& batch, ActivationCache* cache,
                       at::Generator* dropout_masks = nullptr) {
  return cache && !state->config().trains_lower_half()
             ? cache->lower(backbone, state, examples, indices)
             : lower_half(backbone, state, batch.ids, gate_question_mask(state, batch), nullptr, dropout_masks);
}

// Runs `steps` Adam steps of `loss_of(batch, indices)` on `parameters`.
template <class LossOf>
double adam_steps(std::vector<torch::Tensor> parameters, const std::vector<TokenizedExample>& train,
                  const TrainOptions& options, const char* what, LossOf loss_of) {
  torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(options.lr));
  BatchSampler sampler(train.size(), options.seed);
  double last = 0;
  for (int step = 1; step <= options.steps; ++step) {
    const auto indices = sampler.next(options.batch_size);
    torch::Tensor loss = loss_of(make_batch(train, indices), indices);
    check_finite(loss, step, what);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    last = loss.item<double>();
  }
  return last;
}

}  // namespace

double pretrain_first_prompts(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& train,
                              const TrainOptions& options) {
  state->first_prompts.set_requires_grad(true);
  const double loss = adam_steps({state->first_prompts}, train, options, "P0 pretraining",
                                 [&](const ExampleBatch& b, const std::vector<size_t>&) {
    return response_loss(first_prompts_forward(backbone, state, b.ids), b);
  });
  state->first_prompts.set_requires_grad(false);
  return loss;
}

torch::Tensor random_prompts(Llama& backbone, int64_t count, uint64_t seed) {
  torch::NoGradGuard no_grad;
  const double rms = backbone->tok_embeddings->weight.pow(2).mean().sqrt().item<double>();
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn({count, int64_t(backbone->config().dim)}, gen) * rms;  // (N, C)
}

PromptState first_prompt_state(Llama& backbone, const torch::Tensor& first_prompts) {
  MopConfig config;
  config.method = PromptMethod::kPrompt;
  config.first_prompt_count = int(first_prompts.size(0));
  PromptState state(config.resolved(backbone->config()), backbone->config());
  state->to(backbone->device());
  torch::NoGradGuard no_grad;
  state->first_prompts.copy_(first_prompts);
  return state;
}

void init_mid_prompts(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& train,
                      const std::string& how, uint64_t seed) {
  torch::NoGradGuard no_grad;
  const auto& c = state->config();
  if (!uses_mid_prompts(c.method)) return;  // the adapter methods start as their constructor made them
  if (how == "random") {
    state->mid_prompts.copy_(random_prompts(backbone, c.mid_prompt_count(), seed));
    return;
  }
  MOPS_CHECK(how == "p0", "--mid-init '" << how << "' is not one of random, p0");
  BatchSampler sampler(train.size(), seed);
  const auto batch = make_batch(train, sampler.next(16));
  auto reached = lower_half(backbone, state, batch.ids).states.slice(1, 0, c.first_prompt_count).mean(0);  // (K0, C)
  auto index = torch::arange(c.mid_prompt_count()) % c.prompts_per_expert % c.first_prompt_count;      // (E * P)
  state->mid_prompts.copy_(reached.index_select(0, index.to(reached.device())));
}

double pretrain_gate(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& train,
                     const TrainOptions& options) {
  MOPS_CHECK(state->gate, "gate pretraining needs --method mop");
  const int64_t E = state->config().experts;
  adam_steps(state->gate->parameters(), train, options, "gate pretraining",
             [&](const ExampleBatch& b, const std::vector<size_t>& indices) {
    const auto lower = lower_states(backbone, state, train, indices, b, options.lower_cache);
    auto logits = state->gate->logits(lower.gate_input);  // (B, E)
    auto target = torch::tensor(std::vector<int64_t>(b.tasks.begin(), b.tasks.end())).to(logits.device()) % E;  // (B)
    return torch::nn::functional::cross_entropy(logits, target);
  });
  torch::NoGradGuard no_grad;
  BatchSampler sampler(train.size(), options.seed + 1);
  const auto batch = make_batch(train, sampler.next(std::min<int>(64, int(train.size()))));
  auto gate = gate_output(state, lower_half(backbone, state, batch.ids, batch.question_mask));  // (B, E)
  auto target = torch::tensor(std::vector<int64_t>(batch.tasks.begin(), batch.tasks.end())) % E;  // (B)
  return (gate.argmax(1).cpu() == target).to(torch::kDouble).mean().item<double>();
}

double fit_task_centroids(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& train,
                          const TrainOptions& options) {
  MOPS_CHECK(state->task_centroids.defined(), "task centroids need --method mop --gate-route knn");
  torch::NoGradGuard no_grad;
  const int64_t T = state->task_centroids.size(0);
  auto sums = torch::zeros_like(state->task_centroids, torch::kDouble).cpu();  // (T, C)
  auto counts = torch::zeros({T, 1}, torch::kDouble);                         // (T, 1)
  std::vector<torch::Tensor> inputs;                                          // (B, C) each
  const size_t step = size_t(std::max(options.eval_batch_size, 1));
  for (size_t begin = 0; begin < train.size(); begin += step) {
    std::vector<size_t> indices;
    for (size_t i = begin; i < std::min(train.size(), begin + step); ++i) indices.push_back(i);
    const auto batch = make_batch(train, indices);
    inputs.push_back(lower_states(backbone, state, train, indices, batch, options.lower_cache).gate_input.to(torch::kCPU, torch::kDouble));
    const auto task = torch::tensor(std::vector<int64_t>(batch.tasks.begin(), batch.tasks.end()));  // (B)
    sums.index_add_(0, task, inputs.back());
    counts.index_add_(0, task, torch::ones({task.size(0), 1}, torch::kDouble));
  }
  state->task_centroids.copy_(sums / counts.clamp_min(1));  // a task without examples: the origin
  auto truth = torch::empty({int64_t(train.size())}, torch::kLong);
  for (size_t i = 0; i < train.size(); ++i) truth[int64_t(i)] = train[i].task;
  const auto nearest = nearest_centroids(torch::cat(inputs), state->task_centroids);  // (N)
  return (nearest == truth).to(torch::kDouble).mean().item<double>();
}

PromptEvaluation evaluate_prompted(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& test,
                                   const std::vector<std::string>& tasks, int batch_size) {
  const int64_t T = int64_t(tasks.size()), E = state->config().experts;
  // Per task: sums of the gate vectors, their entropies, the experts used, and the example count.
  auto gate_sum = torch::zeros({T, E}, torch::kDouble);
  auto statistics_sum = torch::zeros({T, 3}, torch::kDouble);  // entropy, experts used, examples
  auto logits_of = [&](const ExampleBatch& batch) {
    auto out = prompted_forward(backbone, state, batch);
    if (out.gate.defined()) {
      auto task = torch::tensor(std::vector<int64_t>(batch.tasks.begin(), batch.tasks.end()));  // (B)
      auto gate = out.gate.to(torch::kCPU, torch::kDouble);                                        // (B, E)
      gate_sum.index_add_(0, task, gate);
      statistics_sum.index_add_(0, task, torch::stack({gate_entropy(gate), experts_used(gate), torch::ones_like(gate.select(1, 0))}, 1));
    }
    return out.logits;
  };
  PromptEvaluation evaluation;
  evaluation.report = evaluate_perplexity(test, tasks, batch_size, logits_of);
  // Tasks without test examples get NaN rows.
  if (state->config().method == PromptMethod::kMop) {
    const auto count = statistics_sum.slice(1, 2, 3);  // (T, 1)
    evaluation.gate_by_task = gate_sum / count;
    evaluation.gate_entropy_by_task = statistics_sum.select(1, 0) / count.squeeze(1);
    evaluation.experts_used_by_task = statistics_sum.select(1, 1) / count.squeeze(1);
  }
  return evaluation;
}

namespace {

// Adam on the mid prompts (and MPT's task factors) or the adapters at lr and on the gate (MoPs) at
// gate_lr, which 0 leaves frozen.
torch::optim::Adam main_loop_optimizer(PromptState& state, const TrainOptions& options) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  auto at_lr = state->prompt_tensors();
  for (auto& t : state->adapter_tensors()) at_lr.push_back(t);
  groups.emplace_back(at_lr, std::make_unique<torch::optim::AdamOptions>(options.lr));
  const double gate_lr = options.gate_lr < 0 ? options.lr : options.gate_lr;
  if (state->gate && gate_lr > 0 && state->config().gate_route == GateRoute::kGate) {
    groups.emplace_back(state->gate->parameters(), std::make_unique<torch::optim::AdamOptions>(gate_lr));
  }
  return torch::optim::Adam(std::move(groups), torch::optim::AdamOptions(options.lr));
}

// The main loop's randomness besides the batch order, each from its own seeded stream per loop so
// that a run (and a client's local training) draws the same every time: the noise of the gate's
// logits (TrainOptions::gate_noise) and LoRA's dropout masks (MopConfig::lora_dropout).
class TrainingNoise {
 public:
  TrainingNoise(PromptState& state, const TrainOptions& options)
      : scale_(state->gate ? options.gate_noise : 0.0),
        experts_(state->config().experts),
        dropout_(state->config().method == PromptMethod::kLora && state->config().lora_dropout > 0),
        gate_generator_(at::detail::createCPUGenerator(options.seed + 13)),
        dropout_generator_(at::detail::createCPUGenerator(options.seed + 17)) {}
  // (batch, E) noise, or undefined without noise.
  torch::Tensor gate_logits(int64_t batch) {
    if (scale_ == 0) return {};
    return torch::randn({batch, experts_}, gate_generator_, torch::kFloat32) * scale_;
  }
  // What LayerRun::dropout_masks takes: the stream, or null without dropout.
  at::Generator* dropout_masks() { return dropout_ ? &dropout_generator_ : nullptr; }

 private:
  double scale_;
  int64_t experts_;
  bool dropout_;
  at::Generator gate_generator_, dropout_generator_;
};

struct StepResult {
  double loss;
  torch::Tensor gate;  // (B, E), MoPs only
};

// One optimizer step of the main loop on examples[indices], batched as `batch`.
StepResult main_loop_step(Llama& backbone, PromptState& state, torch::optim::Adam& optimizer,
                          const std::vector<TokenizedExample>& examples, const std::vector<size_t>& indices,
                          const ExampleBatch& batch, const TrainOptions& options, int64_t step, TrainingNoise& noise) {
  const auto lower = lower_states(backbone, state, examples, indices, batch, options.lower_cache, noise.dropout_masks());
  auto out = upper_half_loss(backbone, state, lower, batch, noise.gate_logits(batch.ids.size(0)), noise.dropout_masks());
  check_finite(out.loss, step, "training");
  // The response loss is what is reported; a load-balancing term joins it only in the gradient.
  auto objective = out.loss;
  if (options.gate_balance > 0 && out.gate.defined()) objective = objective + options.gate_balance * load_balance_loss(out.gate);
  optimizer.zero_grad();
  objective.backward();
  optimizer.step();
  return {out.loss.item<double>(), out.gate.defined() ? out.gate.detach() : torch::Tensor()};
}

}  // namespace

LocalTraining train_local(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& examples,
                          const TrainOptions& options) {
  auto optimizer = main_loop_optimizer(state, options);
  BatchSampler sampler(examples.size(), options.seed);
  TrainingNoise noise(state, options);
  LocalTraining result;
  torch::Tensor gate_sum;  // (E)
  for (int step = 1; step <= options.steps; ++step) {
    const auto indices = sampler.next(options.batch_size);
    const auto batch = make_batch(examples, indices);
    const auto done = main_loop_step(backbone, state, optimizer, examples, indices, batch, options, step, noise);
    result.mean_loss += done.loss / options.steps;
    result.tokens += batch.ids.numel();
    if (done.gate.defined()) {
      auto sum = done.gate.to(torch::kDouble).sum(0);
      gate_sum = gate_sum.defined() ? gate_sum + sum : sum;
    }
  }
  if (gate_sum.defined()) result.mean_gate = gate_sum / double(options.steps * options.batch_size);
  return result;
}

TrainingSummary train_prompts(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& train,
                              const std::vector<TokenizedExample>& test, const std::vector<std::string>& tasks,
                              const TrainOptions& options, TrainingObserver& observer) {
  auto optimizer = main_loop_optimizer(state, options);
  BatchSampler sampler(train.size(), options.seed);
  TrainingNoise noise(state, options);
  const auto started = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  TrainingSummary summary;
  for (int step = 1; step <= options.steps; ++step) {
    const auto indices = sampler.next(options.batch_size);
    const auto batch = make_batch(train, indices);
    const auto done = main_loop_step(backbone, state, optimizer, train, indices, batch, options, step, noise);
    tokens += batch.ids.numel();
    observer.on_step(step, done.loss, tokens, done.gate);
    if (step % options.eval_every == 0 || step == options.steps) {
      summary.final = evaluate_prompted(backbone, state, test, tasks, options.eval_batch_size);
      observer.on_eval(step, summary.final);
    }
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  summary.tokens_per_second = double(tokens) / std::max(summary.seconds, 1e-9);
  return summary;
}

}  // namespace mops
