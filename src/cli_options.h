// Options of one `mops` subcommand: Boost.Program_options on the command line, an optional
// INI config file (`--config FILE`) under it, and the resolved values (with where each came
// from) printed as a table at start and kept as JSON for the results file.
#pragma once
#include <boost/program_options.hpp>

#include <iosfwd>
#include <string>
#include <vector>

#include "errors.h"

namespace mops {

namespace po = boost::program_options;

// A mistake in how the command was called (unknown option, bad value): exit code 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

struct ResolvedOption {
  std::string name;
  std::string value;
  std::string source;  // "default", "config file" or "command line"
};

class CommandLine {
 public:
  // `command` as typed ("generate", "tokenizer train"); `summary` is the first line of --help.
  CommandLine(std::string command, std::string summary);

  po::options_description& options() { return options_; }
  void add_threads_option();  // --threads N
  void add_seed_option();     // --seed S

  // Returns false when --help was asked for (and printed to `help_out`).
  bool parse(int argc, const char* const* argv, std::ostream& help_out);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  template <class T>
  T get(const std::string& name) const {
    MOPS_CHECK(has(name), command_ << ": option --" << name << " is required");
    return values_[name].as<T>();
  }
  // The value as an int that must lie in [lo, hi]; otherwise an error naming the option.
  int get_int_in(const std::string& name, int lo, int hi) const;
  double get_double_in(const std::string& name, double lo, double hi) const;

  const std::string& command() const { return command_; }
  std::vector<ResolvedOption> resolved() const;
  std::string resolved_json() const;
  void print_resolved(std::ostream& out) const;

 private:
  void store_config_file(const std::string& path);

  std::string command_, summary_;
  po::options_description options_;
  po::variables_map values_;
  std::vector<std::string> from_command_line_, from_config_file_;
};

}  // namespace mops
