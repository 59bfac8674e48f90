// Options of one `mops` subcommand: Boost.Program_options on the command line, an optional
// INI config file (`--config FILE`) under it, and the resolved values (with where each came
// from) printed as a table at start and kept as JSON for the results file.
#pragma once
#include <boost/program_options.hpp>

#include <iosfwd>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "errors.h"

namespace mops {

namespace po = boost::program_options;

// A mistake in how the command was called (unknown option, a value outside its range, options
// that contradict each other): exit code 2. Thrown before the command reads data or writes.
class UsageError : public Error {
 public:
  using Error::Error;
};

// The values a numeric option allows: [lo, hi], either end open; `hi` = infinity for none.
// Shown in --help ("range: >= 1", "range: (0, 1)") and checked when the command line is parsed.
struct Range {
  long double lo, hi;
  bool lo_open = false, hi_open = false;

  static Range closed(long double lo, long double hi) { return {lo, hi}; }
  static Range at_least(long double lo) { return {lo, kUnbounded}; }
  static Range above(long double lo) { return {lo, kUnbounded, true}; }
  static Range open(long double lo, long double hi) { return {lo, hi, true, true}; }
  static Range half_open(long double lo, long double hi) { return {lo, hi, false, true}; }   // [lo, hi)
  static Range open_closed(long double lo, long double hi) { return {lo, hi, true, false}; } // (lo, hi]

  bool contains(long double value) const;
  std::string text() const;

  static constexpr long double kUnbounded = std::numeric_limits<long double>::infinity();
};

// Runs `parse` (library code reading an option's value); a mops::Error it throws becomes a
// UsageError, because the value is the user's mistake.
template <class Parse>
auto as_usage_error(Parse&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

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
  // A numeric option (T = int, int64_t or double) whose value must lie in `range`; without
  // a default it is optional. Integers are parsed signed, so "-1" is never read as 2^64 - 1.
  template <class T>
  void add_number(const std::string& name, std::optional<T> default_value, Range range, const std::string& help,
                  const std::string& value_name = "");
  // A string option that must be one of `choices` (listed in --help).
  void add_choice(const std::string& name, const std::string& default_value, std::vector<std::string> choices,
                  const std::string& help);
  void add_threads_option();  // --threads N, --thread-split
  void add_seed_option();     // --seed S
  // --device cpu|cuda|auto; with `backbone_dtype` also --dtype auto|float32|bfloat16 (compute_device.h).
  void add_device_options(bool backbone_dtype);
  void add_overwrite_option();  // --overwrite: replace existing outputs

  // Returns false when --help was asked for (and printed to `help_out`).
  bool parse(int argc, const char* const* argv, std::ostream& help_out);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  template <class T>
  T get(const std::string& name) const {
    MOPS_CHECK(has(name), command_ << ": option --" << name << " is required");
    return values_[name].as<T>();
  }
  // The value as an int that must lie in [lo, hi] (bounds known only after parsing, such as
  // the model's layer count); otherwise a UsageError naming the option and the range.
  int get_int_in(const std::string& name, int lo, int hi) const;
  // Throws a UsageError with `message` unless `ok` (options that contradict each other).
  void require(bool ok, const std::string& message) const;

  uint64_t seed() const { return uint64_t(get<int64_t>("seed")); }  // --seed, never negative
  const std::string& command() const { return command_; }
  std::vector<ResolvedOption> resolved() const;
  std::string resolved_json() const;
  void print_resolved(std::ostream& out) const;

 private:
  void store_config_file(const std::string& path);
  void check_values() const;  // ranges and choices of every option that has a value

  struct Allowed {
    std::optional<Range> range;
    std::vector<std::string> choices;
  };

  std::string command_, summary_;
  po::options_description options_;
  po::variables_map values_;
  std::vector<std::string> from_command_line_, from_config_file_;
  std::map<std::string, Allowed> allowed_;
};

}  // namespace mops
