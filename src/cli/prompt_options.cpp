#include "cli/prompt_options.h"

#include <iomanip>
#include <iostream>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "activation_cache.h"
#include "prompt_state_io.h"
#include "prompted_forward.h"

namespace mops {

void add_p0_options(CommandLine& cl) {
  cl.options().add_options()
      ("p0-prompts", po::value<int>()->default_value(10), "K0: first-layer prompts")
      ("p0-steps", po::value<int>()->default_value(20), "P0 pretraining steps (paper: 20)")
      ("p0-lr", po::value<double>()->default_value(1e-2), "P0 pretraining learning rate (Adam)")
      ("p0-batch-size", po::value<int>()->default_value(8), "P0 pretraining batch size");
}

void add_prompt_options(CommandLine& cl) {
  add_p0_options(cl);
  cl.options().add_options()
      ("p0", po::value<std::string>()->value_name("FILE"), "pretrained first-layer prompts (mops prompts pretrain); "
                                                         "without it P0 is pretrained here")
      ("experts", po::value<int>()->default_value(7), "E: prompt experts")
      ("prompts-per-expert", po::value<int>()->default_value(10), "P: prompts per expert")
      ("mid-layer", po::value<int>()->default_value(-1), "L_mid where the mid prompts enter (-1: L/2), in [1, L-1]")
      ("gate-hidden", po::value<int>()->default_value(32), "gate MLP hidden width")
      ("gate-scale", po::value<std::string>()->default_value("experts"),
       "experts: attention x E G_e (a uniform gate = the baseline); paper: attention x G_e")
      ("mid-init", po::value<std::string>()->default_value("random"),
       "mid prompts start as: random (at the token embeddings' scale; lower training loss, README) | p0 (where P0 "
       "reaches L_mid)")
      ("gate-pretrain-steps", po::value<int>()->default_value(200), "gate pretraining on task labels (0: none)")
      ("lr", po::value<double>()->default_value(1e-3), "learning rate (Adam; paper: 1e-3)")
      ("gate-lr", po::value<double>()->value_name("LR"),
       "the gate's learning rate in the main loop (default: --lr; 0 keeps the pretrained gate frozen)")
      ("batch-size", po::value<int>()->default_value(1), "examples per step (paper: 1)")
      ("eval-batch-size", po::value<int>()->default_value(16), "test examples per forward pass")
      ("activation-cache", po::value<std::string>()->default_value("auto")->value_name("MIB"),
       "keep each training example's states at L_mid (they depend only on the frozen model and P0) and run only "
       "the upper half again: auto (a quarter of the free memory, shared by the node's ranks; off under 64 MiB), "
       "a size in MiB, or 0 (off)");
}

TrainOptions optimizer_options(const CommandLine& cl) {
  TrainOptions o;
  o.lr = cl.get_double_in("lr", 0, 10);
  if (cl.has("gate-lr")) o.gate_lr = cl.get_double_in("gate-lr", 0, 10);
  o.batch_size = cl.get_int_in("batch-size", 1, 4096);
  o.eval_batch_size = cl.get_int_in("eval-batch-size", 1, 4096);
  o.seed = cl.get<uint64_t>("seed");
  return o;
}

int prompt_positions(const CommandLine& cl) {
  return std::max(cl.get<int>("p0-prompts"), cl.get<int>("experts") * cl.get<int>("prompts-per-expert"));
}

torch::Tensor first_prompts(const CommandLine& cl, Llama& model, const std::vector<TokenizedExample>& train) {
  if (cl.has("p0")) return load_first_prompts(cl.get<std::string>("p0"), model->config().dim);
  const int count = cl.get_int_in("p0-prompts", 1, model->config().max_seq_len - 1);
  auto state = first_prompt_state(model, random_prompts(model, count, cl.get<uint64_t>("seed") + 100));
  TrainOptions o;
  o.steps = cl.get_int_in("p0-steps", 0, 1 << 30);
  o.lr = cl.get_double_in("p0-lr", 0, 10);
  o.batch_size = cl.get_int_in("p0-batch-size", 1, 4096);
  o.seed = cl.get<uint64_t>("seed") + 101;
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
  PromptState state(config, model->config().dim, cl.get<uint64_t>("seed") + 11);
  {
    torch::NoGradGuard no_grad;
    state->first_prompts.copy_(p0);
  }
  init_mid_prompts(model, state, train, cl.get<std::string>("mid-init"), cl.get<uint64_t>("seed") + 7);
  return state;
}

void pretrain_gate_option(const CommandLine& cl, Llama& model, PromptState& state,
                          const std::vector<TokenizedExample>& train, ActivationCache& cache) {
  auto options = optimizer_options(cl);
  options.lower_cache = &cache;
  options.steps = cl.get_int_in("gate-pretrain-steps", 0, 1 << 30);
  options.batch_size = std::max(options.batch_size, 8);
  const double accuracy = pretrain_gate(model, state, train, options);
  std::cerr << "gate pretrained for " << options.steps << " steps: expert = task on " << std::fixed
            << std::setprecision(1) << 100 * accuracy << " % of a training batch\n";
}

std::unique_ptr<ActivationCache> activation_cache_option(const CommandLine& cl, bool log) {
  auto cache = std::make_unique<ActivationCache>(activation_cache_budget(cl.get<std::string>("activation-cache")));
  if (log) {
    std::cerr << "activation cache: ";
    if (cache->budget_bytes() == 0) std::cerr << "off\n";
    else std::cerr << "up to " << cache->budget_bytes() / (1024 * 1024) << " MiB of lower-half states\n";
  }
  return cache;
}

std::string method_results_path(const CommandLine& cl, const std::string& method, bool both) {
  std::filesystem::path out = cl.get<std::string>("out");
  if (!both) return out.string();
  return (out.parent_path() / (out.stem().string() + "." + method + out.extension().string())).string();
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
  auto row = [&](auto pick) {
    std::cout << "  " << std::left << std::setw(20) << pick(p0_only).task << std::right << std::fixed << std::setprecision(3);
    if (dense) std::cout << std::setw(10) << pick(*dense).perplexity;
    std::cout << std::setw(10) << pick(p0_only).perplexity;
    if (baseline) std::cout << std::setw(10) << pick(*baseline).perplexity;
    if (mop) std::cout << std::setw(10) << pick(*mop).perplexity;
    if (baseline && mop) {
      const double b = pick(*baseline).perplexity, m = pick(*mop).perplexity;
      std::cout << std::setw(10) << std::showpos << std::setprecision(1) << 100.0 * (b - m) / b << std::noshowpos;
    }
    std::cout << "\n";
  };
  for (size_t t = 0; t < p0_only.tasks.size(); ++t) row([t](const EvaluationReport& r) { return r.tasks[t]; });
  row([](const EvaluationReport& r) { return r.overall; });
}

}  // namespace mops
