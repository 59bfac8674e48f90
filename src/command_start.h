// What every subcommand does once its options are parsed: apply --threads and --seed, and
// print the resolved configuration and the thread settings (to stderr; stdout carries results).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli_options.h"

namespace mops {

// `log` = false (ranks other than 0) applies the settings without printing them.
void start_command(const CommandLine& command_line, bool log = true);

// The whole of `text` as a non-negative integer; nothing when it is anything else.
std::optional<int64_t> parse_non_negative(const std::string& text);

// "1 2 3" or "1,2,3" -> ids; an error naming `option` on anything else.
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& option);

}  // namespace mops
