// mops_step_bench: milliseconds per training step of MoPs, the baseline or a peer method on a
// random-weight Llama, the step the trainer runs (src/prompts/prompt_training.cpp, main_loop_step):
// the no-grad lower half, gate, upper half with autograd, the loss on the response positions
// (upper_half_loss), backward, Adam on what the method trains. --profile writes LibTorch's trace of the timed steps (chrome://tracing format; the op
// table comes from bench/profile_table.py). With --cache the lower half comes from the activation cache, in its steady state (the
// warm-up steps fill it), as in the trainer from the second epoch on. bench/pytorch_step.py is
// the same step in PyTorch eager; bench/step_comparison.sh runs both. A benchmark: it prints,
// and never passes or fails on time.
//   mops_step_bench [--dim 128] [--layers 6] [--heads 4] [--kv-heads 2] [--hidden 0 (Llama's)]
//                   [--vocab 1024] [--seq 64] [--batch 8] [--experts 7] [--prompts-per-expert 4]
//                   [--first-prompts 10] [--method mop|prompt|lora|ia3|prefix|mpt]
//                   [--lora-layers upper|all] [--steps 10] [--warmup 2] [--cache]
//                   [--threads 0] [--thread-split blas|torch] [--json] [--profile FILE.json]
//                   [--device cpu|cuda|auto] [--dtype auto|float32|bfloat16]   (as mops train; default cpu)
//   mops_step_bench --sgemm [--threads N] [--thread-split blas|torch] [--json]   (1024^3 torch::mm rate, GFLOP/s)
//
// Letters: B batch, T tokens per example, C width, V vocabulary.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "activation_cache.h"
#include "allocator_settings.h"
#include "compute_device.h"
#include "errors.h"
#include "example_batch.h"
#include "llama.h"
#include "prompt_state.h"
#include "prompted_forward.h"
#include "threads.h"

namespace mops {
namespace {

constexpr int kTasks = 7;  // the random examples' tasks (MPT's factors, knn's centroids)

struct Options {
  ModelConfig model;
  MopConfig mop;
  int seq = 64;
  int batch = 8;
  int steps = 10;
  int warmup = 2;
  int threads = 0;
  ThreadSplit split = ThreadSplit::kBlas;
  std::string device = "cpu", dtype = "auto";
  bool json = false;
  bool sgemm = false;
  bool cache = false;
  std::string profile;  // trace file of the timed steps, or empty
};

const char* kUsage =
    "usage: mops_step_bench [--dim 128] [--layers 6] [--heads 4] [--kv-heads 2] [--hidden 0]\n"
    "                       [--vocab 1024] [--seq 64] [--batch 8] [--experts 7] [--prompts-per-expert 4]\n"
    "                       [--first-prompts 10] [--method mop|prompt|lora|ia3|prefix|mpt]\n"
    "                       [--lora-layers upper|all] [--steps 10] [--warmup 2] [--cache]\n"
    "                       [--threads 0] [--thread-split blas|torch] [--json] [--profile FILE.json]\n"
    "                       [--device cpu|cuda|auto] [--dtype auto|float32|bfloat16]\n"
    "       mops_step_bench --sgemm [--threads 0] [--thread-split blas|torch] [--json]\n";

Options parse_options(int argc, char** argv) {
  Options o;
  o.model = ModelConfig{128, 0, 6, 4, 2, 1024, 0};
  o.mop.prompts_per_expert = 4;
  o.mop.task_count = kTasks;
  int hidden = 0;
  std::map<std::string, int*> ints = {
      {"--dim", &o.model.dim},         {"--layers", &o.model.n_layers},
      {"--heads", &o.model.n_heads},   {"--kv-heads", &o.model.n_kv_heads},
      {"--hidden", &hidden},           {"--vocab", &o.model.vocab_size},
      {"--seq", &o.seq},               {"--batch", &o.batch},
      {"--experts", &o.mop.experts},   {"--prompts-per-expert", &o.mop.prompts_per_expert},
      {"--first-prompts", &o.mop.first_prompt_count}, {"--steps", &o.steps},
      {"--warmup", &o.warmup},         {"--threads", &o.threads}};
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    if (name == "--json") { o.json = true; continue; }
    if (name == "--sgemm") { o.sgemm = true; continue; }
    if (name == "--cache") { o.cache = true; continue; }
    MOPS_CHECK(i + 1 < argc, name << " needs a value\n" << kUsage);
    const std::string value = argv[++i];
    if (name == "--method") o.mop.method = parse_prompt_method(value);
    else if (name == "--lora-layers") o.mop.lora_all_layers = value == "all";
    else if (name == "--thread-split") o.split = parse_thread_split(value);
    else if (name == "--profile") o.profile = value;
    else if (name == "--device") o.device = value;
    else if (name == "--dtype") o.dtype = value;
    else if (ints.count(name)) *ints[name] = std::stoi(value);
    else MOPS_FAIL("unknown option " << name << "\n" << kUsage);
  }
  o.model.hidden_dim = hidden > 0 ? hidden : llama_hidden_dim(o.model.dim, 32);
  o.model.max_seq_len = std::max(o.mop.first_prompt_count, o.mop.mid_prompt_count()) + o.seq;
  MOPS_CHECK(o.steps > 0 && o.seq >= 4 && o.batch > 0, "--steps, --batch must be positive and --seq >= 4");
  MOPS_CHECK(!o.cache || o.warmup > 0, "--cache measures the cache's steady state: it needs --warmup >= 1 to fill it");
  return o;
}

// B examples of T random tokens: BOS, question [1, T/2), response [T/2, T) (no padding); example b
// of task b mod kTasks.
std::vector<TokenizedExample> random_examples(const Options& o, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto ids = torch::randint(3, o.model.vocab_size, {o.batch, o.seq}, gen, torch::kLong);  // (B, T)
  std::vector<TokenizedExample> examples(o.batch);
  for (int b = 0; b < o.batch; ++b) {
    auto& e = examples[b];
    e.ids.assign(ids[b].data_ptr<int64_t>(), ids[b].data_ptr<int64_t>() + o.seq);
    e.ids[0] = 1;  // BOS
    e.question_begin = 1;
    e.question_end = o.seq / 2;
    e.response_begin = o.seq / 2;
    e.task = b % kTasks;
  }
  return examples;
}

// The trainer's optimizer at its defaults (main_loop_optimizer): Adam lr 1e-3 on what the method trains.
torch::optim::Adam make_optimizer(PromptState& state) {
  return torch::optim::Adam(state->trained(), torch::optim::AdamOptions(1e-3));
}

// The step's examples, their batch, and the cache when --cache.
struct StepInput {
  std::vector<TokenizedExample> examples;
  std::vector<size_t> indices;
  ExampleBatch batch;
  ActivationCache* cache = nullptr;
};

// One training step (main_loop_step): forward, loss, backward, Adam; returns the loss.
double train_step(Llama& model, PromptState& state, torch::optim::Adam& optimizer, const StepInput& in) {
  const auto& batch = in.batch;
  const auto lower = in.cache && !state->config().trains_lower_half() ? in.cache->lower(model, state, in.examples, in.indices)
                              : lower_half(model, state, batch.ids, gate_question_mask(state, batch));
  auto loss = upper_half_loss(model, state, lower, batch).loss;  // ()
  optimizer.zero_grad();
  loss.backward();
  optimizer.step();
  return loss.item<double>();
}

double seconds_of(const std::function<void()>& work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Median GFLOP/s of a 1024^3 single-precision torch::mm.
double sgemm_gflops() {
  auto a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});  // (1024, 1024)
  for (int i = 0; i < 3; ++i) torch::mm(a, b);
  std::vector<double> seconds;
  for (int i = 0; i < 10; ++i) seconds.push_back(seconds_of([&] { torch::mm(a, b); }));
  return 2.0 * 1024 * 1024 * 1024 / median(seconds) / 1e9;
}

void report_sgemm(const Options& o, const ThreadSettings& threads) {
  const double gflops = sgemm_gflops();
  if (o.json) std::printf("{\"impl\": \"cpp\", \"sgemm_gflops\": %.2f, \"threads\": %d}\n", gflops, threads.torch_threads);
  else std::printf("sgemm 1024^3: %.2f GFLOP/s (%s)\n", gflops, describe(threads).c_str());
}

void report_steps(const Options& o, const ComputeDevice& compute, const std::vector<double>& seconds, double loss) {
  const double ms = 1e3 * median(seconds);
  const double tokens_per_second = double(o.batch) * o.seq / (ms / 1e3);
  if (o.json) {
    std::printf("{\"impl\": \"cpp\", \"method\": \"%s\", \"dim\": %d, \"layers\": %d, \"seq\": %d, \"batch\": %d, "
                "\"experts\": %d, \"prompts_per_expert\": %d, \"steps\": %d, \"ms_per_step\": %.3f, "
                "\"tokens_per_s\": %.1f, \"loss\": %.4f, \"cache\": %s, \"device\": \"%s\", \"dtype\": \"%s\"}\n",
                method_name(o.mop.method), o.model.dim, o.model.n_layers, o.seq, o.batch, o.mop.experts,
                o.mop.prompts_per_expert, o.steps, ms, tokens_per_second, loss, o.cache ? "true" : "false",
                compute.device.str().c_str(), dtype_name(compute.dtype).c_str());
  } else {
    std::printf("%s d=%d L=%d T=%d B=%d %dx%d prompts%s: %.2f ms/step (median of %d), %.0f tokens/s, last loss %.4f\n",
                method_name(o.mop.method), o.model.dim, o.model.n_layers, o.seq, o.batch, o.mop.experts,
                o.mop.prompts_per_expert, o.cache ? ", cached lower half" : "", ms, o.steps, tokens_per_second, loss);
  }
}

void run(const Options& o) {
  const auto threads = apply_thread_settings(o.threads, o.split);
  if (!o.json) std::printf("# %s\n", describe(threads).c_str());
  if (o.sgemm) return report_sgemm(o, threads);
  const auto compute = resolve_compute_device(o.device, o.dtype);
  if (!o.json) std::printf("# device: %s\n", describe(compute).c_str());
  Llama model(o.model);
  model->init_weights(0);
  model->freeze_on(compute.device, compute.dtype);
  PromptState state(o.mop.resolved(o.model), o.model, 0);
  state->to(compute.device);
  auto optimizer = make_optimizer(state);
  ActivationCache cache(int64_t(1) << 40);
  StepInput in;
  in.examples = random_examples(o, 1);
  for (size_t i = 0; i < in.examples.size(); ++i) in.indices.push_back(i);
  in.batch = make_batch(in.examples, in.indices);
  if (o.cache) in.cache = &cache;
  double loss = 0;
  for (int i = 0; i < o.warmup; ++i) loss = train_step(model, state, optimizer, in);
  std::vector<double> seconds;
  {
    std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
    if (!o.profile.empty()) profile = std::make_unique<torch::autograd::profiler::RecordProfile>(o.profile);
    for (int i = 0; i < o.steps; ++i)
      seconds.push_back(seconds_of([&] { loss = train_step(model, state, optimizer, in); }));
  }
  report_steps(o, compute, seconds, loss);
}

}  // namespace
}  // namespace mops

int main(int argc, char** argv) {
  mops::keep_freed_memory_for_reuse();
  try {
    mops::run(mops::parse_options(argc, argv));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mops_step_bench: %s\n", e.what());
    return 1;
  }
}
