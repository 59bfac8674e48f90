// The `mops` subcommands; each parses its own options and returns the exit code.
#pragma once

namespace mops {

int run_info(int argc, const char* const* argv);
int run_convert(int argc, const char* const* argv);
int run_generate(int argc, const char* const* argv);
int run_pretrain(int argc, const char* const* argv);
int run_evaluate(int argc, const char* const* argv);
int run_prune(int argc, const char* const* argv);
int run_train(int argc, const char* const* argv);
int run_federate(int argc, const char* const* argv);
int run_prompts_pretrain(int argc, const char* const* argv);
int run_data_stats(int argc, const char* const* argv);
int run_data_export(int argc, const char* const* argv);
int run_tokenizer_train(int argc, const char* const* argv);
int run_tokenizer_encode(int argc, const char* const* argv);

}  // namespace mops
