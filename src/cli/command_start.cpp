#include "command_start.h"

#include <torch/torch.h>

#include <iostream>
#include <sstream>

#include "parse_number.h"
#include "threads.h"

namespace mops {

ComputeDevice start_command(const CommandLine& command_line, bool log) {
  if (log) command_line.print_resolved(std::cerr);
  const int threads = command_line.has("threads") ? command_line.get<int>("threads") : 0;
  const auto split = command_line.has("thread-split") ? parse_thread_split(command_line.get<std::string>("thread-split"))
                                                      : ThreadSplit::kBlas;
  const auto settings = apply_thread_settings(threads, split);
  if (log) std::cerr << describe(settings) << "\n";
  if (command_line.has("seed")) torch::manual_seed(command_line.seed());
  ComputeDevice compute;
  if (command_line.has("device")) {
    compute = resolve_compute_device(command_line.get<std::string>("device"),
                                     command_line.has("dtype") ? command_line.get<std::string>("dtype") : "float32");
    if (log) std::cerr << "device: " << describe(compute) << "\n";
  }
  return compute;
}

std::vector<int64_t> parse_id_list(const std::string& text, const std::string& option) {
  std::string spaced = text;
  for (char& c : spaced) {
    if (c == ',') c = ' ';
  }
  std::istringstream in(spaced);
  std::vector<int64_t> ids;
  std::string word;
  while (in >> word) {
    const auto value = parse_non_negative(word);
    MOPS_CHECK(value, "--" << option << ": '" << word << "' is not a non-negative integer id");
    ids.push_back(*value);
  }
  MOPS_CHECK(!ids.empty(), "--" << option << " holds no ids");
  return ids;
}

}  // namespace mops
