// `mops train`: MoPs (Algorithm 1) and/or the prompt-tuning baseline on a compressed model,
// evaluated on the test split, streamed to HDF5; and `mops prompts pretrain` for P0.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "checkpoint.h"
#include "cli/commands.h"
#include "cli/dataset_options.h"
#include "command_start.h"
#include "errors.h"
#include "progress.h"
#include "prompt_state_io.h"
#include "prompt_training.h"
#include "prompted_forward.h"

namespace mops {
namespace {

void add_p0_options(CommandLine& cl) {
  cl.options().add_options()
      ("p0-prompts", po::value<int>()->default_value(10), "K0: first-layer prompts")
      ("p0-steps", po::value<int>()->default_value(20), "P0 pretraining steps (paper: 20)")
      ("p0-lr", po::value<double>()->default_value(1e-2), "P0 pretraining learning rate (Adam)")
      ("p0-batch-size", po::value<int>()->default_value(8), "P0 pretraining batch size");
}

TrainOptions p0_options(const CommandLine& cl) {
  TrainOptions o;
  o.steps = cl.get_int_in("p0-steps", 0, 1 << 30);
  o.lr = cl.get_double_in("p0-lr", 0, 10);
  o.batch_size = cl.get_int_in("p0-batch-size", 1, 4096);
  o.seed = cl.get<uint64_t>("seed") + 101;
  return o;
}

// P0 from --p0 FILE, or pretrained here (random start, then --p0-steps of Adam).
torch::Tensor first_prompts(const CommandLine& cl, Llama& model, const std::vector<TokenizedExample>& train) {
  if (cl.has("p0")) return load_first_prompts(cl.get<std::string>("p0"), model->config().dim);
  const int count = cl.get_int_in("p0-prompts", 1, model->config().max_seq_len - 1);
  auto state = first_prompt_state(model, random_prompts(model, count, cl.get<uint64_t>("seed") + 100));
  const double loss = pretrain_first_prompts(model, state, train, p0_options(cl));
  std::cerr << "P0: " << count << " prompts pretrained for " << cl.get<int>("p0-steps")
            << " steps, last loss " << std::fixed << std::setprecision(4) << loss << "\n";
  return state->first_prompts.detach().clone();
}

// Terminal progress and the results file.
class RunObserver : public TrainingObserver {
 public:
  RunObserver(const std::string& label, int steps, ResultsFile& results, PromptState& state)
      : progress_(label, steps, "steps", std::cerr), results_(results), state_(state) {}

  void on_step(int64_t step, double loss, int64_t tokens) override {
    results_.append_train(step, loss);
    std::ostringstream fields;
    fields << "loss " << std::fixed << std::setprecision(4) << loss << " | "
           << std::setprecision(0) << double(tokens) / std::max(progress_.elapsed_seconds(), 1e-9) << " tok/s";
    if (last_ppl_ > 0) fields << " | test ppl " << std::setprecision(3) << last_ppl_;
    progress_.update(step, fields.str());
  }

  void on_eval(int64_t step, const PromptEvaluation& evaluation) override {
    std::vector<double> ppl;
    for (const auto& t : evaluation.report.tasks) ppl.push_back(t.perplexity);
    std::vector<double> gate;
    if (evaluation.gate_by_task.defined()) {
      auto g = evaluation.gate_by_task.to(torch::kDouble).contiguous();
      gate.assign(g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
    }
    results_.append_eval(step, ppl, evaluation.report.overall.perplexity, gate);
    write_prompt_state(results_, state_);  // the last good state, at every evaluation
    last_ppl_ = evaluation.report.overall.perplexity;
  }

  void finish() { progress_.finish(); }

 private:
  Progress progress_;
  ResultsFile& results_;
  PromptState& state_;
  double last_ppl_ = 0;
};

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

TrainOptions train_options(const CommandLine& cl) {
  TrainOptions o;
  o.steps = cl.get_int_in("steps", 1, 1 << 30);
  o.lr = cl.get_double_in("lr", 0, 10);
  if (cl.has("gate-lr")) o.gate_lr = cl.get_double_in("gate-lr", 0, 10);
  o.batch_size = cl.get_int_in("batch-size", 1, 4096);
  o.eval_every = cl.get_int_in("eval-every", 1, 1 << 30);
  o.eval_batch_size = cl.get_int_in("eval-batch-size", 1, 4096);
  o.seed = cl.get<uint64_t>("seed");
  return o;
}

// results.h5 -> results.mop.h5 when both methods run.
std::string results_path(const CommandLine& cl, PromptMethod method, bool both) {
  std::filesystem::path out = cl.get<std::string>("out");
  if (!both) return out.string();
  return (out.parent_path() / (out.stem().string() + "." + method_name(method) + out.extension().string())).string();
}

struct MethodRun {
  PromptMethod method;
  PromptEvaluation final;
  TrainingSummary summary;
};

MethodRun run_method(const CommandLine& cl, PromptMethod method, bool both, Llama& model, const torch::Tensor& p0,
                     const InstructionDataset& dataset, const TokenizedSplit& data, const nlohmann::json& references) {
  const auto config = mop_config(cl, method, int(p0.size(0)), model->config());
  PromptState state(config, model->config().dim, cl.get<uint64_t>("seed") + 11);
  {
    torch::NoGradGuard no_grad;
    state->first_prompts.copy_(p0);
  }
  init_mid_prompts(model, state, data.train, cl.get<std::string>("mid-init"), cl.get<uint64_t>("seed") + 7);
  ResultsHeader header;
  header.config_json = cl.resolved_json();
  header.method = method_name(method);
  header.mode = "centralized";
  header.seed = cl.get<uint64_t>("seed");
  header.tasks = dataset.tasks;
  header.experts = config.experts;
  header.prompts_per_expert = config.prompts_per_expert;
  const auto path = results_path(cl, method, both);
  ResultsFile results(path, header);
  results.write_attribute("references", references.dump());
  if (method == PromptMethod::kMop && cl.get<int>("gate-pretrain-steps") > 0) {
    auto options = train_options(cl);
    options.steps = cl.get<int>("gate-pretrain-steps");
    options.batch_size = std::max(options.batch_size, 8);
    const double accuracy = pretrain_gate(model, state, data.train, options);
    std::cerr << "gate pretrained for " << options.steps << " steps: expert = task on " << std::fixed
              << std::setprecision(1) << 100 * accuracy << " % of a training batch\n";
    const auto before = evaluate_prompted(model, state, data.test, dataset.tasks, cl.get<int>("eval-batch-size"));
    auto g = before.gate_by_task.to(torch::kDouble).contiguous();
    results.write_state("gate_by_task_after_pretraining", std::vector<float>(g.data_ptr<double>(), g.data_ptr<double>() + g.numel()),
                        g.sizes().vec());
  }
  RunObserver observer(std::string("train ") + method_name(method), cl.get<int>("steps"), results, state);
  results.write_attribute("status", "running");
  MethodRun run{method, {}, train_prompts(model, state, data.train, data.test, dataset.tasks, train_options(cl), observer)};
  observer.finish();
  run.final = run.summary.final;
  results.write_attribute("status", "finished");
  results.write_attribute("tokens_per_second", std::to_string(run.summary.tokens_per_second));
  results.close();
  std::cerr << method_name(method) << ": " << std::fixed << std::setprecision(1) << run.summary.seconds << " s, "
            << std::setprecision(0) << run.summary.tokens_per_second << " tokens/s; results in " << path << "\n";
  return run;
}

void print_table(const std::vector<MethodRun>& runs, const EvaluationReport& p0_only, const EvaluationReport* dense) {
  const MethodRun* baseline = nullptr;
  const MethodRun* mop = nullptr;
  for (const auto& r : runs) (r.method == PromptMethod::kMop ? mop : baseline) = &r;
  std::cout << "test perplexity (response tokens)\n  " << std::left << std::setw(20) << "task" << std::right;
  if (dense) std::cout << std::setw(10) << "dense";
  std::cout << std::setw(10) << "P0 only";
  if (baseline) std::cout << std::setw(10) << "Baseline";
  if (mop) std::cout << std::setw(10) << "MoPs";
  if (baseline && mop) std::cout << std::setw(11) << "Gain (%)";
  std::cout << "\n";
  auto row = [&](auto pick) {
    std::cout << "  " << std::left << std::setw(20) << pick(p0_only).task << std::right << std::fixed << std::setprecision(3);
    if (dense) std::cout << std::setw(10) << pick(*dense).perplexity;
    std::cout << std::setw(10) << pick(p0_only).perplexity;
    if (baseline) std::cout << std::setw(10) << pick(baseline->final.report).perplexity;
    if (mop) std::cout << std::setw(10) << pick(mop->final.report).perplexity;
    if (baseline && mop) {
      const double b = pick(baseline->final.report).perplexity, m = pick(mop->final.report).perplexity;
      std::cout << std::setw(10) << std::showpos << std::setprecision(1) << 100.0 * (b - m) / b << std::noshowpos;
    }
    std::cout << "\n";
  };
  for (size_t t = 0; t < p0_only.tasks.size(); ++t) row([t](const EvaluationReport& r) { return r.tasks[t]; });
  row([](const EvaluationReport& r) { return r.overall; });
}

}  // namespace

int run_train(int argc, const char* const* argv) {
  CommandLine cl("train",
                 "Train MoPs (mid-layer prompt experts with a gate, Algorithm 1) and/or the prompt-tuning baseline on a "
                 "compressed model; evaluate test perplexity per task; stream results to HDF5.");
  cl.options().add_options()
      ("method", po::value<std::string>()->default_value("both"), "mop | prompt | both")
      ("model", po::value<std::string>()->required()->value_name("PATH"), "compressed checkpoint (mops prune)")
      ("tokenizer", po::value<std::string>()->required()->value_name("FILE"), "SentencePiece .model")
      ("out", po::value<std::string>()->required()->value_name("FILE.h5"),
       "results file (with --method both: FILE.mop.h5 and FILE.prompt.h5)")
      ("p0", po::value<std::string>()->value_name("FILE"), "pretrained first-layer prompts (mops prompts pretrain); "
                                                         "without it P0 is pretrained here")
      ("dense-model", po::value<std::string>()->value_name("PATH"), "the uncompressed model, evaluated as a reference")
      ("experts", po::value<int>()->default_value(7), "E: prompt experts")
      ("prompts-per-expert", po::value<int>()->default_value(10), "P: prompts per expert")
      ("mid-layer", po::value<int>()->default_value(-1), "L_mid where the mid prompts enter (-1: L/2), in [1, L-1]")
      ("gate-hidden", po::value<int>()->default_value(32), "gate MLP hidden width")
      ("gate-scale", po::value<std::string>()->default_value("experts"),
       "experts: attention x E G_e (a uniform gate = the baseline); paper: attention x G_e")
      ("mid-init", po::value<std::string>()->default_value("p0"), "mid prompts start as: p0 (where P0 reaches L_mid) | random")
      ("gate-pretrain-steps", po::value<int>()->default_value(200), "gate pretraining on task labels (0: none)")
      ("steps", po::value<int>()->default_value(20000), "training steps (paper: 20000)")
      ("lr", po::value<double>()->default_value(1e-3), "learning rate (Adam; paper: 1e-3)")
      ("gate-lr", po::value<double>()->value_name("LR"),
       "the gate's learning rate in the main loop (default: --lr; 0 keeps the pretrained gate frozen)")
      ("batch-size", po::value<int>()->default_value(1), "examples per step (paper: 1)")
      ("eval-every", po::value<int>()->default_value(2000), "steps between test evaluations (and at the end)")
      ("eval-batch-size", po::value<int>()->default_value(16), "test examples per forward pass");
  add_p0_options(cl);
  add_dataset_options(cl, true);
  cl.add_threads_option();
  cl.add_seed_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  start_command(cl);
  const auto method = cl.get<std::string>("method");
  MOPS_CHECK(method == "both" || method == "mop" || method == "prompt", "--method '" << method << "' is not one of mop, prompt, both");
  auto loaded = load_model(cl.get<std::string>("model"));
  auto& model = loaded.model;
  model->freeze();
  const auto dataset = load_instruction_dataset(dataset_options(cl));
  const auto tokenizer = Tokenizer::load(cl.get<std::string>("tokenizer"));
  const auto data = tokenize_dataset(dataset, tokenizer, model->config().max_seq_len - 1 -
                                                             std::max(cl.get<int>("p0-prompts"),
                                                                      cl.get<int>("experts") * cl.get<int>("prompts-per-expert")));
  const int eval_batch = cl.get_int_in("eval-batch-size", 1, 4096);
  const auto p0 = first_prompts(cl, model, data.train);

  auto p0_state = first_prompt_state(model, p0);
  const auto p0_only = evaluate_perplexity(data.test, dataset.tasks, eval_batch, [&](const ExampleBatch& b) {
    return first_prompts_forward(model, p0_state, b.ids);
  });
  nlohmann::json references{{"p0_only", perplexity_json(p0_only)}};
  std::unique_ptr<EvaluationReport> dense;
  if (cl.has("dense-model")) {
    auto dense_model = load_model(cl.get<std::string>("dense-model")).model;
    dense = std::make_unique<EvaluationReport>(
        evaluate_perplexity(data.test, dataset.tasks, eval_batch, backbone_logits(dense_model)));
    references["dense"] = perplexity_json(*dense);
  }
  std::vector<MethodRun> runs;
  const bool both = method == "both";
  if (both || method == "prompt") runs.push_back(run_method(cl, PromptMethod::kPrompt, both, model, p0, dataset, data, references));
  if (both || method == "mop") runs.push_back(run_method(cl, PromptMethod::kMop, both, model, p0, dataset, data, references));
  print_table(runs, p0_only, dense.get());
  return 0;
}

int run_prompts_pretrain(int argc, const char* const* argv) {
  CommandLine cl("prompts pretrain",
                 "Pretrain the first-layer prompts P0 on a (compressed) model: a short run of Adam on the response loss "
                 "through the whole model; both MoPs and the baseline then start from them, frozen.");
  cl.options().add_options()
      ("model", po::value<std::string>()->required()->value_name("PATH"), "compressed checkpoint")
      ("tokenizer", po::value<std::string>()->required()->value_name("FILE"), "SentencePiece .model")
      ("out", po::value<std::string>()->required()->value_name("FILE"), "where to write P0 (.safetensors)");
  add_p0_options(cl);
  add_dataset_options(cl, true);
  cl.add_threads_option();
  cl.add_seed_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  start_command(cl);
  auto model = load_model(cl.get<std::string>("model")).model;
  model->freeze();
  const auto dataset = load_instruction_dataset(dataset_options(cl));
  const auto tokenizer = Tokenizer::load(cl.get<std::string>("tokenizer"));
  const auto data = tokenize_dataset(dataset, tokenizer, model->config().max_seq_len - 1 - cl.get<int>("p0-prompts"));
  const auto p0 = first_prompts(cl, model, data.train);
  const auto out = cl.get<std::string>("out");
  save_first_prompts(out, p0, {{"model", cl.get<std::string>("model")}, {"p0_config", cl.resolved_json()}});
  std::cout << "wrote " << out << " (" << p0.size(0) << " x " << p0.size(1) << ")\n";
  return 0;
}

}  // namespace mops
