// What every subcommand does once its options are parsed: apply --threads and --seed, and
// print the resolved configuration and the thread settings (to stderr; stdout carries results).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cli_options.h"

namespace mops {

void start_command(const CommandLine& command_line);

// "1 2 3" or "1,2,3" -> ids; an error naming `option` on anything else.
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& option);

}  // namespace mops
