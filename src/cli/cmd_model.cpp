// `mops info` and `mops convert`: look at a checkpoint, or rewrite it in the project's format or
// as a Hugging Face directory.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint.h"
#include "command_start.h"
#include "commands.h"
#include "compute_device.h"
#include "hf_checkpoint.h"
#include "output_files.h"
#include "peft_export.h"
#include "prompt_state_io.h"

namespace mops {

namespace {

// "sparsegpt 2:4 + int8, 50.00 % of block weights zero, test perplexity 1.035 -> 1.059"
std::string compression_summary(const std::string& record_json) {
  const auto record = nlohmann::json::parse(record_json);
  std::ostringstream text;
  text << record.value("method", "?") << " " << record.value("pattern", "?") << (record.value("int8", false) ? " + int8" : "")
       << ", " << std::fixed << std::setprecision(2) << 100.0 * record.value("achieved_sparsity", 0.0)
       << " % of block weights zero";
  if (record.contains("perplexity_before") && record.contains("perplexity_after")) {
    text << ", " << record.value("perplexity_split", std::string("test")) << " perplexity " << std::setprecision(3) << record["perplexity_before"].value("overall", 0.0) << " -> "
         << record["perplexity_after"].value("overall", 0.0);
  }
  return text.str();
}

}  // namespace

int run_info(int argc, const char* const* argv) {
  CommandLine cl("info", "Describe a model checkpoint: format, shapes and parameter count.");
  cl.options().add_options()("model", po::value<std::string>()->required()->value_name("PATH"),
                             "checkpoint: .safetensors (project format), .bin (llama2.c v0) or a "
                             "Hugging Face directory");
  if (!cl.parse(argc, argv, std::cout)) return 0;
  const auto path = cl.get<std::string>("model");
  auto loaded = load_model(path);
  const auto& c = loaded.model->config();
  std::cout << std::left;
  auto row = [](const std::string& key, const auto& value) {
    std::cout << "  " << std::setw(20) << key << value << "\n";
  };
  std::cout << path << "\n";
  row("format", format_name(loaded.format));
  row("dim", c.dim);
  row("hidden_dim", c.hidden_dim);
  row("layers", c.n_layers);
  row("heads / kv heads", std::to_string(c.n_heads) + " / " + std::to_string(c.n_kv_heads));
  row("vocab", c.vocab_size);
  row("max_seq_len", c.max_seq_len);
  row("classifier", c.tied_classifier ? "tied to the embedding" : "separate");
  row("parameters", c.parameter_count());
  if (loaded.metadata.count("compression")) row("compression", compression_summary(loaded.metadata.at("compression")));
  for (const auto& [key, value] : loaded.metadata) {
    if (key != "mops_model_config" && value.size() < 200) row(key, value);
  }
  row("runs on (auto)", describe(resolve_compute_device("auto", "auto")));
  return 0;
}

namespace {

// The directory --out names for --to hf or peft, made when missing (its parent must exist), and
// its subdirectories `subdirs`; an existing file there is a usage error.
void make_out_directory(const CommandLine& cl, const std::vector<std::string>& subdirs) {
  const std::filesystem::path dir = cl.get<std::string>("out");
  cl.require(!std::filesystem::exists(dir) || std::filesystem::is_directory(dir),
             "--out " + dir.string() + " is a file; --to " + cl.get<std::string>("to") + " writes a directory");
  if (!std::filesystem::exists(dir)) {
    check_writable_path("--out", dir.string());
    std::filesystem::create_directory(dir);
  }
  for (const auto& sub : subdirs) std::filesystem::create_directories(dir / sub);
}

// The files `mops convert` writes: OUT, or for --to hf DIR/config.json, DIR/model.safetensors
// (and tokenizer.model), for --to peft DIR/prompt_tuning/ and DIR/lora/ adapter files and DIR/mops/.
std::vector<std::string> convert_outputs(const CommandLine& cl, bool lora) {
  const auto to = cl.get<std::string>("to");
  const std::filesystem::path out = cl.get<std::string>("out");
  if (to == "mops") return {out.string()};
  std::vector<std::string> files;
  if (to == "hf") {
    make_out_directory(cl, {});
    files = {(out / "config.json").string(), (out / "model.safetensors").string()};
    if (cl.has("tokenizer")) files.push_back((out / "tokenizer.model").string());
    return files;
  }
  std::vector<std::string> adapters = {"prompt_tuning"};
  if (lora) adapters.push_back("lora");
  for (const auto& a : adapters) {
    for (const char* f : {"adapter_config.json", "adapter_model.safetensors"}) files.push_back((out / a / f).string());
  }
  for (const char* f : {"config.json", "state.safetensors"}) files.push_back((out / "mops" / f).string());
  adapters.push_back("mops");
  make_out_directory(cl, adapters);
  return files;
}

}  // namespace

int run_convert(int argc, const char* const* argv) {
  CommandLine cl("convert",
                 "Convert a checkpoint mops reads (its own safetensors, a llama2.c v0 .bin, a Hugging Face Llama "
                 "directory; dense, pruned or int8-dequantized) to the project's safetensors format (float32, "
                 "interleaved RoPE layout), or with --to hf to a Hugging Face Llama directory that "
                 "transformers' LlamaForCausalLM.from_pretrained loads (config.json, float32 model.safetensors, "
                 "q/k rows in the rotate-half layout); or with --to peft a run's P0 and LoRA as PEFT adapters for "
                 "that export, and its whole state in mops' own format.");
  cl.options().add_options()
      ("model", po::value<std::string>()->required()->value_name("PATH"), "checkpoint to read")
      ("out", po::value<std::string>()->required()->value_name("PATH"),
       "where to write: a .safetensors file, or with --to hf or peft a directory (made when missing); nothing in "
       "it is replaced without --overwrite")
      ("tokenizer", po::value<std::string>()->value_name("FILE"),
       "--to hf: a SentencePiece .model copied into the directory as tokenizer.model")
      ("prompts", po::value<std::string>()->value_name("RESULTS.h5"),
       "--to peft: the results file of a run on --model whose P0 (and LoRA adapters) to export");
  cl.add_choice("to", "mops", {"mops", "hf", "peft"},
                "the format written: mops (the project's), hf (a Hugging Face Llama directory) or peft (a run's P0 "
                "as a PEFT prompt-tuning adapter and its LoRA as a PEFT LoRA adapter, for the hf export of --model)");
  cl.add_overwrite_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  const auto to = cl.get<std::string>("to");
  const bool hf = to == "hf";
  cl.require(hf || !cl.has("tokenizer"), "--tokenizer is copied by --to hf only; the other formats hold no tokenizer");
  cl.require((to == "peft") == cl.has("prompts"), "--prompts RESULTS.h5 goes with --to peft, and --to peft needs it");
  cl.require(!cl.has("tokenizer") || std::filesystem::is_regular_file(cl.get<std::string>("tokenizer")),
             "--tokenizer " + (cl.has("tokenizer") ? cl.get<std::string>("tokenizer") : "") + " is not a file");
  start_command(cl);
  const auto out = cl.get<std::string>("out");
  const bool lora = cl.has("prompts") && mop_config_from_json(read_string_attribute(cl.get<std::string>("prompts"),
                                                                                    "prompt_config"),
                                                              cl.get<std::string>("prompts"))
                                                 .method == PromptMethod::kLora;
  const auto files = convert_outputs(cl, lora);
  const auto locks = claim_outputs("--out", files, cl.get<bool>("overwrite"));
  auto loaded = load_model(cl.get<std::string>("model"));
  if (to == "peft") {
    auto state = read_prompt_state(cl.get<std::string>("prompts"), loaded.model->config());
    for (const auto& dir : save_peft_adapters(state, out)) std::cout << "wrote " << dir << "/\n";
    return 0;
  }
  if (!hf) {
    save_model(loaded.model, out, {{"converted_from", cl.get<std::string>("model")}});
    std::cout << "wrote " << out << " (" << loaded.model->config().parameter_count() << " parameters, "
              << std::filesystem::file_size(out) << " bytes)\n";
    return 0;
  }
  save_hf_checkpoint(loaded.model, out);
  if (cl.has("tokenizer")) {
    std::filesystem::copy_file(cl.get<std::string>("tokenizer"), files.back(),
                               std::filesystem::copy_options::overwrite_existing);
  }
  std::cout << "wrote " << out << "/: config.json, model.safetensors (" << loaded.model->config().parameter_count()
            << " parameters, " << std::filesystem::file_size(files[1]) << " bytes)"
            << (cl.has("tokenizer") ? ", tokenizer.model" : "") << "\n";
  return 0;
}

}  // namespace mops
