// `mops generate`: continue a text or a list of token ids.
#include <algorithm>
#include <iostream>
#include <memory>
#include <limits>

#include "checkpoint.h"
#include "command_start.h"
#include "commands.h"
#include "generate.h"
#include "instruction_format.h"
#include "prompt_state_io.h"
#include "prompted_forward.h"
#include "tokenizer.h"

namespace mops {

namespace {

// The task id --task names among the --prompts file's tasks: MPT's prompts depend on it; the
// other methods take none.
int prompt_task(const CommandLine& cl, const MopConfig& config) {
  const auto path = cl.get<std::string>("prompts");
  if (config.method != PromptMethod::kMpt) {
    cl.require(!cl.has("task"), "--task is for the prompts of a --method mpt run; " + path + " holds " +
                                    method_name(config.method) + " prompts, which choose no task");
    return 0;
  }
  const auto tasks = read_strings(path, "tasks");
  std::string names;
  for (const auto& t : tasks) names += (names.empty() ? "" : ", ") + t;
  cl.require(cl.has("task"), path + " holds multitask prompts (--method mpt): name the task with --task, one of " + names);
  const auto found = std::find(tasks.begin(), tasks.end(), cl.get<std::string>("task"));
  cl.require(found != tasks.end(), "--task '" + cl.get<std::string>("task") + "' is not one of " + path + "'s tasks: " + names);
  return int(found - tasks.begin());
}

}  // namespace

int run_generate(int argc, const char* const* argv) {
  CommandLine cl("generate",
                 "Generate a continuation with a KV cache. Give --prompt TEXT (needs a tokenizer) or "
                 "--ids \"1 2 3\"; with --print-ids the generated ids are printed on one line and no "
                 "tokenizer is needed.");
  cl.options().add_options()
      ("model", po::value<std::string>()->required()->value_name("PATH"),
       "checkpoint: .safetensors (project format), .bin (llama2.c v0) or a Hugging Face directory")
      ("tokenizer", po::value<std::string>()->value_name("FILE"), "SentencePiece .model file")
      ("prompt", po::value<std::string>()->value_name("TEXT"), "text to continue (BOS is prepended)")
      ("ids", po::value<std::string>()->value_name("\"1 2 3\""), "token ids to continue, space or comma separated")
      ("instruction", po::value<std::string>()->value_name("TEXT"),
       "an instruction, written with the prompt template (see README); prints only the answer")
      ("input", po::value<std::string>()->default_value("")->value_name("TEXT"), "the instruction's input (context)")
      ("prompts", po::value<std::string>()->value_name("RESULTS.h5"),
       "generate with the prompts (and gate) a `mops train` run saved; needs --instruction, from which the gate "
       "chooses the experts")
      ("task", po::value<std::string>()->value_name("NAME"),
       "with --prompts of a `--method mpt` run: the task whose prompts to use, one of the results file's /tasks")
      ("greedy", po::bool_switch(), "always take the most likely token")
      ("print-ids", po::bool_switch(), "print the generated ids, space separated, on one line");
  cl.add_number<int>("max-new-tokens", 64, Range::closed(0, 1 << 20),
                     "tokens to generate at most (and no more than the model's context allows)", "N");
  cl.add_number<double>("temperature", 0.8, Range::open(0, 1e6), "sampling temperature", "T");
  cl.add_number<double>("top-p", 0.95, Range::open_closed(0, 1),
                        "nucleus sampling: sample among the most likely tokens holding this much mass", "P");
  cl.add_number<int64_t>("stop-id", std::nullopt, Range::closed(0, std::numeric_limits<int32_t>::max()),
                         "stop after generating this id (default: the tokenizer's EOS; none without a tokenizer)", "ID");
  cl.add_threads_option();
  cl.add_device_options(true);
  cl.add_seed_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  cl.require(int(cl.has("prompt")) + int(cl.has("ids")) + int(cl.has("instruction")) == 1,
             "give exactly one of --prompt TEXT, --instruction TEXT [--input TEXT] and --ids \"1 2 3\"");
  const bool print_ids = cl.get<bool>("print-ids");
  cl.require(cl.has("tokenizer") || (cl.has("ids") && print_ids),
             "--tokenizer FILE is needed to encode --prompt or to print text; with --ids, --print-ids "
             "needs no tokenizer");
  cl.require(!cl.has("prompts") || cl.has("instruction"),
             "--prompts needs --instruction TEXT [--input TEXT]: the gate reads the instruction to choose experts");
  cl.require(!cl.has("task") || cl.has("prompts"), "--task NAME needs --prompts RESULTS.h5 (of a --method mpt run)");
  const auto ids = cl.has("ids") ? as_usage_error([&] { return parse_id_list(cl.get<std::string>("ids"), "ids"); })
                                 : std::vector<int64_t>{};
  const auto compute = start_command(cl);

  std::unique_ptr<Tokenizer> tokenizer;
  if (cl.has("tokenizer")) tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(cl.get<std::string>("tokenizer")));
  auto loaded = load_model(cl.get<std::string>("model"));
  MOPS_CHECK(!tokenizer || tokenizer->vocab_size() <= loaded.model->config().vocab_size,
             "the tokenizer has " << tokenizer->vocab_size() << " pieces but the model's vocabulary is "
                                  << loaded.model->config().vocab_size << ": they do not belong together");
  loaded.model->freeze_on(compute.device, compute.dtype);

  std::vector<int64_t> prompt;
  std::unique_ptr<Decoder> decoder;
  if (cl.has("ids")) {
    prompt = ids;
  } else if (cl.has("instruction")) {
    const InstructionRecord record{"", cl.get<std::string>("instruction"), cl.get<std::string>("input"), "", "command line"};
    auto example = tokenize_prompt(record, *tokenizer);
    prompt = example.ids;
    if (cl.has("prompts")) {
      auto state = read_prompt_state(cl.get<std::string>("prompts"), loaded.model->config());
      example.task = prompt_task(cl, state->config());
      state->to(compute.device);
      MopConfig resolved = state->config().resolved(loaded.model->config());
      MOPS_CHECK(resolved.mid_layer == state->config().mid_layer, "the prompts were trained for another model");
      decoder = std::make_unique<PromptedDecoder>(loaded.model, state, example);
    }
  } else {
    prompt.push_back(tokenizer->bos_id());
    for (int id : tokenizer->encode(cl.get<std::string>("prompt"))) prompt.push_back(id);
  }
  SamplingOptions options;
  options.max_new_tokens = cl.get<int>("max-new-tokens");
  options.greedy = cl.get<bool>("greedy");
  options.temperature = cl.get<double>("temperature");
  options.top_p = cl.get<double>("top-p");
  options.seed = cl.seed();
  options.stop_id = cl.has("stop-id") ? cl.get<int64_t>("stop-id") : (tokenizer ? tokenizer->eos_id() : -1);

  if (!decoder) decoder = std::make_unique<BackboneDecoder>(loaded.model, prompt);
  const auto result = generate(*decoder, options);
  if (print_ids) {
    for (size_t i = 0; i < result.ids.size(); ++i) std::cout << (i ? " " : "") << result.ids[i];
    std::cout << "\n";
  } else if (cl.has("instruction")) {
    std::vector<int> answer(result.ids.begin(), result.ids.end());
    if (!answer.empty() && answer.back() == tokenizer->eos_id()) answer.pop_back();
    std::cout << tokenizer->decode(answer) << "\n";
  } else {
    std::vector<int> all(prompt.begin(), prompt.end());
    all.insert(all.end(), result.ids.begin(), result.ids.end());
    std::cout << tokenizer->decode(all) << "\n";
  }
  std::cerr << "generated " << result.ids.size() << " tokens in " << result.seconds << " s ("
            << result.ids.size() / std::max(1e-9, result.seconds) << " tokens/s), stopped by "
            << result.stop_reason << "\n";
  return 0;
}

}  // namespace mops
