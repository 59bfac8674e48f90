#include "prompt_options.h"

#include <filesystem>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "activation_cache.h"
#include "prompt_state_io.h"
#include "prompted_forward.h"

namespace mops {

constexpr int kMaxInt = std::numeric_limits<int>::max();

void add_p0_options(CommandLine& cl) {
  cl.add_number<int>("p0-prompts", 10, Range::closed(1, kMaxInt), "K0: first-layer prompts (fewer than the model's max_seq_len)");
  cl.add_number<int>("p0-steps", 20, Range::closed(0, kMaxInt), "P0 pretraining steps (paper: 20)");
  cl.add_number<double>("p0-lr", 1e-2, Range::closed(0, 10), "P0 pretraining learning rate (Adam)");
  cl.add_number<int>("p0-batch-size", 8, Range::closed(1, 4096), "P0 pretraining batch size");
}

void add_prompt_options(CommandLine& cl) {
  add_p0_options(cl);
  cl.options().add_options()
      ("p0", po::value<std::string>()->value_name("FILE"), "pretrained first-layer prompts (mops prompts pretrain); "
                                                         "without it P0 is pretrained here");
  cl.add_number<int>("experts", 7, Range::closed(1, 4096), "E: prompt experts");
  cl.add_number<int>("prompts-per-expert", 10, Range::closed(1, kMaxInt),
                     "P: prompts per expert (E x P must be fewer than the model's max_seq_len)");
  cl.add_number<int>("mid-layer", -1, Range::closed(-1, kMaxInt),
                     "L_mid where the mid prompts enter: 1 to L-1 for a model of L layers, or -1 for L/2");
  cl.add_number<int>("gate-hidden", 32, Range::closed(1, 1 << 20), "gate MLP hidden width");
  cl.add_choice("gate-scale", "experts", {"experts", "paper"},
                "experts: attention x E G_e (a uniform gate = the baseline); paper: attention x G_e");
  cl.add_choice("mid-init", "random", {"random", "p0"},
                "mid prompts start as: random (at the token embeddings' scale; lower training loss, README) or p0 "
                "(where P0 reaches L_mid)");
  cl.add_number<int>("gate-pretrain-steps", 200, Range::closed(0, kMaxInt), "gate pretraining on task labels (0: none)");
  cl.add_number<double>("lr", 1e-3, Range::closed(0, 10), "learning rate (Adam; paper: 1e-3)");
  cl.add_number<double>("gate-lr", std::nullopt, Range::closed(0, 10),
                        "the gate's learning rate in the main loop (default: --lr; 0 keeps the pretrained gate frozen)",
                        "LR");
  cl.add_number<int>("batch-size", 1, Range::closed(1, 4096), "examples per step (paper: 1)");
  cl.add_number<int>("eval-batch-size", 16, Range::closed(1, 4096), "test examples per forward pass");
  cl.options().add_options()
      ("activation-cache", po::value<std::string>()->default_value("auto")->value_name("MIB"),
       "keep each training example's states at L_mid (they depend only on the frozen model and P0) and run only "
       "the upper half again: auto (a quarter of the free memory, shared by the node's ranks; off under 64 MiB), "
       "a size in MiB, or 0 (off)");
}

TrainOptions optimizer_options(const CommandLine& cl) {
  TrainOptions o;
  o.lr = cl.get<double>("lr");
  if (cl.has("gate-lr")) o.gate_lr = cl.get<double>("gate-lr");
  o.batch_size = cl.get<int>("batch-size");
  o.eval_batch_size = cl.get<int>("eval-batch-size");
  o.seed = cl.seed();
  return o;
}

namespace {

std::string no_room_for_tokens(const ModelConfig& model) {
  return " leave no room for tokens in the model's max_seq_len " + std::to_string(model.max_seq_len) +
         " (prompt positions and tokens share it)";
}

}  // namespace

void validate_p0_options(const CommandLine& cl, const ModelConfig& model) {
  const int first = cl.get<int>("p0-prompts");
  cl.require(first < model.max_seq_len, "--p0-prompts " + std::to_string(first) + no_room_for_tokens(model));
}

void validate_prompt_options(const CommandLine& cl, const ModelConfig& model) {
  const int layers = model.n_layers;
  const int mid = cl.get<int>("mid-layer");
  cl.require(layers >= 2, "the model has 1 layer; mid-layer prompts need a model of at least 2");
  cl.require(mid == -1 || mid <= layers - 1,
             "--mid-layer " + std::to_string(mid) + " is outside [1, " + std::to_string(layers - 1) +
                 "] for this model of " + std::to_string(layers) + " layers (or -1 for L/2 = " +
                 std::to_string(layers / 2) + ")");
  cl.require(mid != 0, "--mid-layer 0 would replace P0 itself; give 1 to " + std::to_string(layers - 1) + " or -1");
  validate_p0_options(cl, model);
  const int64_t mid_positions = int64_t(cl.get<int>("experts")) * cl.get<int>("prompts-per-expert");
  cl.require(mid_positions < model.max_seq_len, "--experts " + std::to_string(cl.get<int>("experts")) +
                                          " x --prompts-per-expert " + std::to_string(cl.get<int>("prompts-per-expert")) +
                                          " = " + std::to_string(mid_positions) + " mid prompt positions" +
                                          no_room_for_tokens(model));
  as_usage_error([&] { return activation_cache_budget(cl.get<std::string>("activation-cache"), torch::kCPU); });
}

int prompt_positions(const CommandLine& cl) {
  return std::max(cl.get<int>("p0-prompts"), cl.get<int>("experts") * cl.get<int>("prompts-per-expert"));
}

torch::Tensor first_prompts(const CommandLine& cl, Llama& model, const std::vector<TokenizedExample>& train) {
  if (cl.has("p0")) return load_first_prompts(cl.get<std::string>("p0"), model->config().dim);
  const int count = cl.get<int>("p0-prompts");
  auto state = first_prompt_state(model, random_prompts(model, count, cl.seed() + 100));
  TrainOptions o;
  o.steps = cl.get<int>("p0-steps");
  o.lr = cl.get<double>("p0-lr");
  o.batch_size = cl.get<int>("p0-batch-size");
  o.seed = cl.seed() + 101;
  const double loss = pretrain_first_prompts(model, state, train, o);
  std::cerr << "P0: " << count << " prompts pretrained for " << o.steps << " steps, last loss " << std::fixed
            << std::setprecision(4) << loss << "\n";
  return state->first_prompts.detach().clone();
}

MopConfig mop_config(const CommandLine& cl, PromptMethod method, int first_prompt_count, const ModelConfig& model) {
  MopConfig c;
  c.method = method;
  c.first_prompts = first_prompt_count;
  c.experts = cl.get<int>("experts");
  c.prompts_per_expert = cl.get<int>("prompts-per-expert");
  c.mid_layer = cl.get<int>("mid-layer");
  c.gate_hidden = cl.get<int>("gate-hidden");
  c.gate_scale = parse_gate_scale(cl.get<std::string>("gate-scale"));
  return c.resolved(model);
}

PromptState initial_prompt_state(const CommandLine& cl, PromptMethod method, Llama& model, const torch::Tensor& p0,
                                 const std::vector<TokenizedExample>& train) {
  const auto config = mop_config(cl, method, int(p0.size(0)), model->config());
  PromptState state(config, model->config().dim, cl.seed() + 11);
  state->to(model->device());  // made on the CPU, so that the gate's start is the same on every device
  {
    torch::NoGradGuard no_grad;
    state->first_prompts.copy_(p0);
  }
  init_mid_prompts(model, state, train, cl.get<std::string>("mid-init"), cl.seed() + 7);
  return state;
}

void pretrain_gate_option(const CommandLine& cl, Llama& model, PromptState& state,
                          const std::vector<TokenizedExample>& train, ActivationCache& cache) {
  auto options = optimizer_options(cl);
  options.lower_cache = &cache;
  options.steps = cl.get<int>("gate-pretrain-steps");
  options.batch_size = std::max(options.batch_size, 8);
  const double accuracy = pretrain_gate(model, state, train, options);
  std::cerr << "gate pretrained for " << options.steps << " steps: expert = task on " << std::fixed
            << std::setprecision(1) << 100 * accuracy << " % of a training batch\n";
}

std::unique_ptr<ActivationCache> activation_cache_option(const CommandLine& cl, const torch::Device& device, bool log) {
  const auto budget = activation_cache_budget(cl.get<std::string>("activation-cache"), device);
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

std::vector<std::pair<PromptMethod, std::string>> method_results_paths(const CommandLine& cl, const std::string& chosen,
                                                                       const char* (*name_of)(PromptMethod)) {
  const std::filesystem::path out = cl.get<std::string>("out");
  std::vector<std::pair<PromptMethod, std::string>> paths;
  for (auto method : {PromptMethod::kPrompt, PromptMethod::kMop}) {
    const std::string name = name_of(method);
    if (chosen == "both")
      paths.emplace_back(method, (out.parent_path() / (out.stem().string() + "." + name + out.extension().string())).string());
    else if (chosen == name)
      paths.emplace_back(method, out.string());
  }
  return paths;
}

EvaluationReport evaluate_p0_only(Llama& model, const torch::Tensor& p0, const std::vector<TokenizedExample>& test,
                                  const std::vector<std::string>& tasks, int batch_size) {
  auto state = first_prompt_state(model, p0);
  return evaluate_perplexity(test, tasks, batch_size,
                             [&](const ExampleBatch& b) { return first_prompts_forward(model, state, b.ids); });
}

namespace {

std::vector<double> values_of(const torch::Tensor& t) {
  auto d = t.to(torch::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

}  // namespace

void append_evaluation(ResultsFile& results, int64_t step, const PromptEvaluation& evaluation) {
  std::vector<double> ppl;
  for (const auto& t : evaluation.report.tasks) ppl.push_back(t.perplexity);
  const auto gate = evaluation.gate_by_task.defined() ? values_of(evaluation.gate_by_task) : std::vector<double>{};
  results.append_eval(step, ppl, evaluation.report.overall.perplexity, gate);
}

void write_gate_after_pretraining(ResultsFile& results, Llama& model, PromptState& state,
                                  const std::vector<TokenizedExample>& test, const std::vector<std::string>& tasks,
                                  int batch_size) {
  const auto gate = evaluate_prompted(model, state, test, tasks, batch_size).gate_by_task;  // (T, E)
  const auto values = values_of(gate);
  results.write_state("gate_by_task_after_pretraining", std::vector<float>(values.begin(), values.end()),
                      gate.sizes().vec());
}

std::string compression_attribute(const std::map<std::string, std::string>& model_metadata) {
  const auto found = model_metadata.find("compression");
  if (found == model_metadata.end()) return nlohmann::json{{"method", "none"}}.dump();
  auto record = nlohmann::json::parse(found->second);
  record.erase("matrices");
  return record.dump();
}

void print_comparison_table(const std::string& baseline_label, const EvaluationReport* baseline,
                            const EvaluationReport* mop, const EvaluationReport& p0_only, const EvaluationReport* dense) {
  std::cout << "test perplexity (response tokens)\n  " << std::left << std::setw(20) << "task" << std::right;
  if (dense) std::cout << std::setw(10) << "dense";
  std::cout << std::setw(10) << "P0 only";
  if (baseline) std::cout << std::setw(10) << baseline_label;
  if (mop) std::cout << std::setw(10) << "MoPs";
  if (baseline && mop) std::cout << std::setw(11) << "Gain (%)";
  std::cout << "\n";
  // A task without test examples has no perplexity: "n/a" and a note instead of nan.
  auto cell = [](int width, double value, bool gain = false) {
    std::ostringstream text;
    text << std::fixed << std::setprecision(gain ? 1 : 3) << (gain ? std::showpos : std::noshowpos) << value;
    std::cout << std::setw(width) << (std::isfinite(value) ? text.str() : "n/a");
  };
  auto row = [&](auto pick) {
    std::cout << "  " << std::left << std::setw(20) << pick(p0_only).task << std::right;
    if (dense) cell(10, pick(*dense).perplexity);
    cell(10, pick(p0_only).perplexity);
    if (baseline) cell(10, pick(*baseline).perplexity);
    if (mop) cell(10, pick(*mop).perplexity);
    if (baseline && mop) {
      const double b = pick(*baseline).perplexity, m = pick(*mop).perplexity;
      cell(10, 100.0 * (b - m) / b, true);
    }
    std::cout << "\n";
  };
  for (size_t t = 0; t < p0_only.tasks.size(); ++t) row([t](const EvaluationReport& r) { return r.tasks[t]; });
  row([](const EvaluationReport& r) { return r.overall; });
  for (const auto& task : p0_only.tasks) {
    if (task.examples == 0)
      std::cout << "  note: " << task.task << " has no test examples, so no perplexity (n/a); more data "
                << "(--samples-per-source, --skills7-per-task) or a larger --test-fraction gives it some\n";
  }
}

}  // namespace mops
