// `mops`: one binary, one subcommand per task. Errors print one line and exit non-zero
// (2 for a usage mistake, 1 for anything else).
#include <c10/util/Exception.h>

#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "allocator_settings.h"
#include "cli_options.h"
#include "commands.h"

namespace {

struct Command {
  const char* name;  // as typed after `mops`, possibly two words
  const char* summary;
  std::function<int(int, const char* const*)> run;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> list = {
      {"info", "describe a model checkpoint (format, shapes, parameter count)", mops::run_info},
      {"convert", "convert a checkpoint to the project's format or a Hugging Face directory, a run's P0 and LoRA to PEFT",
       mops::run_convert},
      {"generate", "generate text or token ids from a model, with a KV cache", mops::run_generate},
      {"pretrain", "train a small decoder from scratch on text and/or instruction data", mops::run_pretrain},
      {"evaluate", "per-task test perplexity and exact match on instruction data", mops::run_evaluate},
      {"prune", "compress a model: SparseGPT, Wanda or magnitude pruning (unstructured or N:M), int8",
       mops::run_prune},
      {"prompts pretrain", "pretrain the first-layer prompts P0 on a compressed model", mops::run_prompts_pretrain},
      {"train", "train MoPs and/or the prompt baseline, evaluate per task, write HDF5 results", mops::run_train},
      {"federate", "train MoPs and/or FedPrompt federated (FedAvg) over simulated clients on MPI ranks",
       mops::run_federate},
      {"data stats", "records per task, split sizes, lengths and the client partition of instruction data",
       mops::run_data_stats},
      {"data export", "the tokenized examples (and their federated clients) as JSON Lines, for PEFT, Flower and other tools",
       mops::run_data_export},
      {"tokenizer train", "train a SentencePiece tokenizer on text or JSONL files", mops::run_tokenizer_train},
      {"tokenizer encode", "print the token ids of a text", mops::run_tokenizer_encode},
  };
  return list;
}

void print_usage(std::ostream& out) {
  out << "mops " << MOPS_VERSION
      << ": mixture of soft prompts with a gate, on compressed Llama models\n\n"
         "Usage: mops <command> [options]      (mops <command> --help for its options)\n\nCommands:\n";
  for (const auto& c : commands()) out << "  " << c.name << std::string(20 - std::strlen(c.name), ' ') << c.summary << "\n";
}

// Finds the command named by the first one or two arguments; `words` gets how many it took.
const Command* find_command(int argc, const char* const* argv, int& words) {
  for (const auto& c : commands()) {
    const std::string name = c.name;
    const auto space = name.find(' ');
    if (space == std::string::npos && argc > 1 && name == argv[1]) {
      words = 1;
      return &c;
    }
    if (space != std::string::npos && argc > 2 && name.substr(0, space) == argv[1] &&
        name.substr(space + 1) == argv[2]) {
      words = 2;
      return &c;
    }
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  mops::keep_freed_memory_for_reuse();
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    print_usage(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::cout << "mops " << MOPS_VERSION << "\n";
    return 0;
  }
  int words = 0;
  const Command* command = find_command(argc, argv, words);
  if (!command) {
    std::cerr << "mops: unknown command '" << argv[1] << "'\n\n";
    print_usage(std::cerr);
    return 2;
  }
  try {
    // The subcommand sees its own name as argv[0].
    return command->run(argc - words, argv + words);
  } catch (const mops::UsageError& e) {
    std::cerr << "mops " << command->name << ": error: " << e.what() << " (see: mops " << command->name
              << " --help)\n";
    return 2;
  } catch (const mops::Error& e) {
    std::cerr << "mops " << command->name << ": error: " << e.what() << "\n";
  } catch (const c10::Error& e) {
    std::cerr << "mops " << command->name << ": LibTorch error: " << e.what_without_backtrace() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "mops " << command->name << ": error: " << e.what() << "\n";
  }
  return 1;
}
