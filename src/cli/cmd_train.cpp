// `mops train`: MoPs (Algorithm 1) and/or the prompt-tuning baseline on a compressed model,
// evaluated on the test split, streamed to HDF5 (the run: src/prompts/centralized_run.h); and
// `mops prompts pretrain` for P0.
#include <iostream>
#include <limits>
#include <optional>

#include "centralized_run.h"
#include "checkpoint.h"
#include "command_start.h"
#include "commands.h"
#include "comparison_table.h"
#include "dataset_options.h"
#include "output_files.h"
#include "prompt_options.h"
#include "prompt_state_io.h"
#include "run_results.h"
#include "run_start.h"

namespace mops {
namespace {

PromptRunSettings centralized_settings(const CommandLine& cl) {
  auto settings = prompt_run_settings(cl);
  settings.train.steps = cl.get<int>("steps");
  settings.train.eval_every = cl.get<int>("eval-every");
  return settings;
}

}  // namespace

int run_train(int argc, const char* const* argv) {
  CommandLine cl("train",
                 "Train MoPs (mid-layer prompt experts with a gate, Algorithm 1) and/or the prompt-tuning baseline on a "
                 "compressed model; evaluate test perplexity per task; stream results to HDF5.");
  cl.add_choice("method", "both", {"mop", "prompt", "both", "lora", "ia3", "prefix", "mpt"},
                "MoPs, the prompt baseline, both (baseline first), or a peer method on the same P0, data and steps: lora "
                "(--lora-*), ia3 (keys, values and feed-forward scaled), prefix (E x P learned keys and values), each "
                "in the layers >= L_mid; mpt (multitask prompt tuning: E x P shared mid prompts times a rank-one "
                "matrix per task, the task id read from the data in training and at test time)");
  cl.options().add_options()
      ("model", po::value<std::string>()->required()->value_name("PATH"), "compressed checkpoint (mops prune)")
      ("tokenizer", po::value<std::string>()->required()->value_name("FILE"), "SentencePiece .model")
      ("out", po::value<std::string>()->required()->value_name("FILE.h5"),
       "results file (with --method both: FILE.mop.h5 and FILE.prompt.h5); never replaced without --overwrite")
      ("dense-model", po::value<std::string>()->value_name("PATH"), "the uncompressed model, evaluated as a reference");
  cl.add_number<int>("steps", 20000, Range::closed(1, std::numeric_limits<int>::max()), "training steps (paper: 20000)");
  cl.add_number<int>("eval-every", 2000, Range::closed(1, std::numeric_limits<int>::max()),
                     "steps between test evaluations (and at the end)");
  add_prompt_options(cl);
  add_dataset_options(cl, true);
  cl.add_threads_option();
  cl.add_device_options(true);
  cl.add_seed_option();
  cl.add_overwrite_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  const auto compute = start_command(cl);
  auto loaded = load_model(cl.get<std::string>("model"));
  auto& model = loaded.model;
  validate_prompt_options(cl, model->config());
  const auto outputs = method_results_paths(cl.get<std::string>("out"), cl.get<std::string>("method"), method_name);
  std::vector<std::string> files;
  for (const auto& output : outputs) files.push_back(output.path);
  const auto locks = claim_outputs("--out", files, cl.get<bool>("overwrite"));
  const auto settings = centralized_settings(cl);
  std::optional<DenseReference> dense;
  if (cl.has("dense-model")) dense = DenseReference{cl.get<std::string>("dense-model"), compute};
  model->freeze_on(compute.device, compute.dtype);
  const auto data = load_tokenized_data(cl, model->config().max_seq_len - 1 - prompt_positions(settings));
  const auto reports = run_centralized(model, settings, outputs, data, compression_attribute(loaded.metadata), dense);
  print_comparison_table(std::cout, "Baseline", reports);
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
  cl.add_device_options(true);
  cl.add_seed_option();
  cl.add_overwrite_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  const auto compute = start_command(cl);
  auto model = load_model(cl.get<std::string>("model")).model;
  validate_p0_options(cl, model->config());
  const auto locks = claim_outputs("--out", {cl.get<std::string>("out")}, cl.get<bool>("overwrite"));
  model->freeze_on(compute.device, compute.dtype);
  const auto p0_settings = first_prompt_settings(cl);
  const auto data = load_tokenized_data(cl, model->config().max_seq_len - 1 - p0_settings.count);
  const auto p0 = load_or_pretrain_first_prompts(p0_settings, cl.seed(), model, data.train);
  const auto out = cl.get<std::string>("out");
  save_first_prompts(out, p0, {{"model", cl.get<std::string>("model")}, {"p0_config", cl.resolved_json()}});
  std::cout << "wrote " << out << " (" << p0.size(0) << " x " << p0.size(1) << ")\n";
  return 0;
}

}  // namespace mops
