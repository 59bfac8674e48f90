// Fuzz target (f): the INI config reader of `mops <command> --config FILE` (CommandLine::parse in
// src/cli/cli_options.cpp, Boost.Program_options' parse_config_file). The input is written to a
// temporary file (in /dev/shm when it can) and parsed with `--config FILE --threads 2` by a
// CommandLine holding a representative set of options: int, int64, uint64, double, string,
// vector<string> (multitoken, a repeated key gives a list), bool_switch and bool values.
// mops::Error (UsageError among them) is the expected rejection. Invariants of an accepted
// result: the command line wins over the file (threads = 2, from "command line"), every resolved
// row has a known source, and the resolved table and JSON can be produced.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_options.h"
#include "errors.h"
#include "fuzz_target.h"

namespace {

namespace po = boost::program_options;

const std::string& config_path() {
  static const std::string path = [] {
    const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return dir + "/mops-fuzz-ini-" + std::to_string(getpid()) + ".ini";
  }();
  return path;
}

void add_options(mops::CommandLine& cl) {
  cl.add_threads_option();
  cl.add_seed_option();
  cl.options().add_options()
      ("method", po::value<std::string>()->default_value("both"), "string")
      ("model", po::value<std::string>(), "string without default")
      ("data", po::value<std::vector<std::string>>()->multitoken(), "list")
      ("tasks", po::value<std::vector<std::string>>()->multitoken()->default_value({"a"}, "a"), "list")
      ("steps", po::value<int>()->default_value(10), "int")
      ("clients", po::value<int>(), "int without default")
      ("data-seed", po::value<int64_t>()->default_value(-1), "int64")
      ("max-bytes", po::value<uint64_t>(), "uint64")
      ("lr", po::value<double>()->default_value(1e-3), "double")
      ("sparsity", po::value<double>(), "double without default")
      ("top-p", po::value<float>()->default_value(0.95f), "float")
      ("greedy", po::bool_switch(), "bool switch")
      ("skip-bad-records", po::bool_switch(), "bool switch")
      ("int8", po::value<bool>()->default_value(false), "bool value");
}

int one_input(const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream file(config_path(), std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!file) return 0;  // cannot write the temporary file: nothing to test
  }
  mops::CommandLine cl("fuzz", "fuzz target for the INI config reader");
  add_options(cl);
  const std::string path = config_path();
  const char* argv[] = {"mops", "--config", path.c_str(), "--threads", "2"};
  std::ostringstream help;
  try {
    if (!cl.parse(5, argv, help)) return 0;  // `help = ...` in the file is not looked at
  } catch (const mops::Error&) {
    return 0;  // rejected: expected for bad input
  }
  MOPS_FUZZ_ASSERT(help.str().empty());
  MOPS_FUZZ_ASSERT(cl.get<int>("threads") == 2);
  bool threads_seen = false;
  for (const mops::ResolvedOption& row : cl.resolved()) {
    MOPS_FUZZ_ASSERT(row.source == "default" || row.source == "config file" ||
                     row.source == "command line");
    if (row.name == "threads") {
      threads_seen = true;
      MOPS_FUZZ_ASSERT(row.source == "command line" && row.value == "2");
    }
    MOPS_FUZZ_ASSERT(row.name != "help");
  }
  MOPS_FUZZ_ASSERT(threads_seen);
  // Values of the typed options read back as their types.
  if (cl.has("steps")) (void)cl.get<int>("steps");
  if (cl.has("lr")) (void)cl.get<double>("lr");
  if (cl.has("data")) (void)cl.get<std::vector<std::string>>("data");
  if (cl.has("greedy")) (void)cl.get<bool>("greedy");
  std::ostringstream table;
  cl.print_resolved(table);
  MOPS_FUZZ_ASSERT(!table.str().empty());
  MOPS_FUZZ_ASSERT(!cl.resolved_json().empty());  // also for values that are not UTF-8 (finding 2)
  return 0;
}

}  // namespace

MOPS_FUZZ_TARGET(ini_config, one_input)
