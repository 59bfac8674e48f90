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

// The files `mops convert --to hf` writes into DIR, which it makes when missing (its parent must
// exist); checked and locked before anything is read.
std::vector<std::string> hf_outputs(const CommandLine& cl) {
  const std::filesystem::path dir = cl.get<std::string>("out");
  cl.require(!std::filesystem::exists(dir) || std::filesystem::is_directory(dir),
             "--out " + dir.string() + " is a file; --to hf writes a directory (config.json, model.safetensors)");
  std::vector<std::string> files = {(dir / "config.json").string(), (dir / "model.safetensors").string()};
  if (cl.has("tokenizer")) files.push_back((dir / "tokenizer.model").string());
  if (!std::filesystem::exists(dir)) {
    check_writable_path("--out", dir.string());
    std::filesystem::create_directory(dir);
  }
  return files;
}

}  // namespace

int run_convert(int argc, const char* const* argv) {
  CommandLine cl("convert",
                 "Convert a checkpoint mops reads (its own safetensors, a llama2.c v0 .bin, a Hugging Face Llama "
                 "directory; dense, pruned or int8-dequantized) to the project's safetensors format (float32, "
                 "interleaved RoPE layout), or with --to hf to a Hugging Face Llama directory that "
                 "transformers' LlamaForCausalLM.from_pretrained loads (config.json, float32 model.safetensors, "
                 "q/k rows in the rotate-half layout).");
  cl.options().add_options()
      ("model", po::value<std::string>()->required()->value_name("PATH"), "checkpoint to read")
      ("out", po::value<std::string>()->required()->value_name("PATH"),
       "where to write: a .safetensors file, or with --to hf a directory (made when missing); nothing in it is "
       "replaced without --overwrite")
      ("tokenizer", po::value<std::string>()->value_name("FILE"),
       "--to hf: a SentencePiece .model copied into the directory as tokenizer.model");
  cl.add_choice("to", "mops", {"mops", "hf"}, "the format written: mops (the project's) or hf (Hugging Face)");
  cl.add_overwrite_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  const bool hf = cl.get<std::string>("to") == "hf";
  cl.require(hf || !cl.has("tokenizer"), "--tokenizer is copied by --to hf only; the project's format holds no tokenizer");
  cl.require(!cl.has("tokenizer") || std::filesystem::is_regular_file(cl.get<std::string>("tokenizer")),
             "--tokenizer " + (cl.has("tokenizer") ? cl.get<std::string>("tokenizer") : "") + " is not a file");
  start_command(cl);
  const auto out = cl.get<std::string>("out");
  const auto files = hf ? hf_outputs(cl) : std::vector<std::string>{out};
  const auto locks = claim_outputs("--out", files, cl.get<bool>("overwrite"));
  auto loaded = load_model(cl.get<std::string>("model"));
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
