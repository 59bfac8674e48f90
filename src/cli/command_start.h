// What every subcommand does once its options are parsed: apply --threads and --seed, resolve
// --device and --dtype, and print the resolved configuration, the thread settings and the
// device (to stderr; stdout carries results).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cli_options.h"
#include "compute_device.h"

namespace mops {

// `log` = false (ranks other than 0) applies the settings without printing them. Returns where
// the command computes: --device/--dtype when it has them (a GPU that is asked for and missing
// is a mops::Error here, before any data is read), else the CPU in float32.
ComputeDevice start_command(const CommandLine& command_line, bool log = true);

// "1 2 3" or "1,2,3" -> ids; an error naming `option` on anything else.
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& option);

}  // namespace mops
