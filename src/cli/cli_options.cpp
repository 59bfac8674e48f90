#include "cli_options.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <thread>
#include <type_traits>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>

namespace mops {
namespace {

// Text of a stored option value, for the types the subcommands use.
std::string value_text(const boost::any& value) {
  if (value.empty()) return "";
  const auto& type = value.type();
  std::ostringstream out;
  if (type == typeid(std::string)) return boost::any_cast<std::string>(value);
  if (type == typeid(int)) out << boost::any_cast<int>(value);
  else if (type == typeid(int64_t)) out << boost::any_cast<int64_t>(value);
  else if (type == typeid(uint64_t)) out << boost::any_cast<uint64_t>(value);
  else if (type == typeid(double)) out << boost::any_cast<double>(value);
  else if (type == typeid(float)) out << boost::any_cast<float>(value);
  else if (type == typeid(bool)) out << (boost::any_cast<bool>(value) ? "true" : "false");
  else if (type == typeid(std::vector<std::string>)) {
    const auto& items = boost::any_cast<std::vector<std::string>>(value);
    for (size_t i = 0; i < items.size(); ++i) out << (i ? " " : "") << items[i];
  } else {
    out << "<" << type.name() << ">";
  }
  return out.str();
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// A bound as --help shows it: integers without a decimal point.
std::string bound_text(long double value) {
  std::ostringstream out;
  if (value == std::floor(value) && std::fabs(value) < 1e18L) out << static_cast<long long>(value);
  else out << static_cast<double>(value);
  return out.str();
}

// The value of a numeric option as a long double, or nothing when it is not numeric.
std::optional<long double> numeric_value(const boost::any& value) {
  const auto& type = value.type();
  if (type == typeid(int)) return boost::any_cast<int>(value);
  if (type == typeid(int64_t)) return boost::any_cast<int64_t>(value);
  if (type == typeid(double)) return boost::any_cast<double>(value);
  return std::nullopt;
}

// Boost.Program_options builds an error message by replacing placeholders (%value%,
// %invalid_line%, ...: a '%', lower-case letters and '_', a '%') with the offending text until
// none is left, so text that holds one never ends (found by fuzz/targets/ini_config.cpp). Errors
// about such text get a message of our own instead.
bool holds_boost_placeholder(const std::string& text) {
  for (size_t open = text.find('%'); open != std::string::npos; open = text.find('%', open + 1)) {
    size_t end = open + 1;
    while (end < text.size() && (std::islower(static_cast<unsigned char>(text[end])) || text[end] == '_')) ++end;
    if (end > open + 1 && end < text.size() && text[end] == '%') return true;
  }
  return false;
}

// What `error` says, without asking Boost when `input` holds a placeholder.
std::string error_text(const po::error& error, const std::string& input) {
  if (holds_boost_placeholder(input))
    return "cannot read an option or value that holds text such as '%value%' (the option parser cannot report "
           "what is wrong with it); remove it";
  return error.what();
}

}  // namespace

bool Range::contains(long double value) const {
  if (std::isnan(value)) return false;
  const bool above_lo = lo_open ? value > lo : value >= lo;
  const bool below_hi = hi_open ? value < hi : value <= hi;
  return above_lo && below_hi;
}

std::string Range::text() const {
  if (hi == kUnbounded) return (lo_open ? "> " : ">= ") + bound_text(lo);
  return std::string(lo_open ? "(" : "[") + bound_text(lo) + ", " + bound_text(hi) + (hi_open ? ")" : "]");
}

CommandLine::CommandLine(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)), options_("Options") {
  options_.add_options()
      ("help,h", "show this help and exit")
      ("config", po::value<std::string>()->value_name("FILE"),
       "INI file of option=value lines (names as on the command line, without --); "
       "command-line options override it");
}

template <class T>
void CommandLine::add_number(const std::string& name, std::optional<T> default_value, Range range,
                             const std::string& help, const std::string& value_name) {
  static_assert(std::is_same_v<T, int> || std::is_same_v<T, int64_t> || std::is_same_v<T, double>,
                "numeric options are int, int64_t or double");
  if (range.hi >= static_cast<long double>(std::numeric_limits<T>::max())) range.hi = Range::kUnbounded;  // the type bounds it
  auto* value = po::value<T>();
  if (default_value) value->default_value(*default_value);
  if (!value_name.empty()) value->value_name(value_name);
  options_.add_options()(name.c_str(), value, (help + " (range: " + range.text() + ")").c_str());
  allowed_[name].range = range;
}

template void CommandLine::add_number<int>(const std::string&, std::optional<int>, Range, const std::string&,
                                           const std::string&);
template void CommandLine::add_number<int64_t>(const std::string&, std::optional<int64_t>, Range, const std::string&,
                                               const std::string&);
template void CommandLine::add_number<double>(const std::string&, std::optional<double>, Range, const std::string&,
                                              const std::string&);

void CommandLine::add_choice(const std::string& name, const std::string& default_value,
                             std::vector<std::string> choices, const std::string& help) {
  std::string listed;
  for (const auto& choice : choices) listed += (listed.empty() ? "" : " | ") + choice;
  options_.add_options()(name.c_str(), po::value<std::string>()->default_value(default_value),
                         (listed + ": " + help).c_str());
  allowed_[name].choices = std::move(choices);
}

void CommandLine::add_threads_option() {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  add_number<int>("threads", 0, Range::closed(0, cores),
                  "cores this process uses, at most this machine's " + std::to_string(cores) +
                      "; 0 = all of them (under mpirun: the node's cores divided among its ranks), "
                      "at most OMP_NUM_THREADS when set",
                  "N");
  add_choice("thread-split", "blas", {"blas", "torch"},
             "only where LibTorch's BLAS is OpenBLAS: who gets the N cores, blas (OpenBLAS's products; "
             "LibTorch's own ops on 1 thread) or torch (LibTorch's pool; OpenBLAS on 1 thread). The torch "
             "wheel's LibTorch has MKL inside, on LibTorch's threads: there the N cores are LibTorch's");
}

void CommandLine::add_device_options(bool backbone_dtype) {
  add_choice("device", "auto", {"auto", "cpu", "cuda"},
             "where to compute: cuda (a rank's GPU is its rank on the node mod the visible GPUs; ranks may share "
             "one), cpu, or auto (cuda when a GPU is visible, else cpu)");
  if (backbone_dtype) {
    add_choice("dtype", "auto", {"auto", "float32", "bfloat16"},
               "dtype of the frozen backbone (prompts, gate, optimizer and loss stay float32): auto is bfloat16 "
               "on cuda and float32 on cpu");
  }
}

void CommandLine::add_seed_option() {
  add_number<int64_t>("seed", 0, Range::closed(0, std::numeric_limits<int64_t>::max()),
                      "random seed; the same seed gives the same result", "S");
}

void CommandLine::add_overwrite_option() {
  options_.add_options()("overwrite", po::bool_switch(),
                         "replace output files that exist already (without it, an existing output is an error "
                         "and is left untouched)");
}

bool CommandLine::parse(int argc, const char* const* argv, std::ostream& help_out) {
  std::string arguments;
  for (int i = 1; i < argc; ++i) arguments += std::string(argv[i]) + " ";
  try {
    auto parsed = po::command_line_parser(argc, argv).options(options_).run();
    for (const auto& option : parsed.options) from_command_line_.push_back(option.string_key);
    po::store(parsed, values_);
    if (values_.count("help")) {
      help_out << "Usage: mops " << command_ << " [options]\n\n" << summary_ << "\n\n" << options_;
      return false;
    }
    if (values_.count("config")) store_config_file(values_["config"].as<std::string>());
    po::notify(values_);
  } catch (const po::error& e) {
    throw UsageError(error_text(e, arguments));
  }
  check_values();
  return true;
}

void CommandLine::store_config_file(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    throw UsageError("--config '" + path + "' " +
                     (std::filesystem::exists(path, error) ? "is not a regular file" : "does not exist"));
  std::ifstream file(path);
  if (!file) throw UsageError("cannot open config file '" + path + "': " + std::strerror(errno));
  std::ostringstream text;
  text << file.rdbuf();
  std::istringstream in(text.str());
  try {
    auto parsed = po::parse_config_file(in, options_, /*allow_unregistered=*/false);
    for (const auto& option : parsed.options) from_config_file_.push_back(option.string_key);
    po::store(parsed, values_);  // values already set on the command line are kept
  } catch (const po::error& e) {
    throw UsageError("config file '" + path + "': " + error_text(e, text.str()));
  }
}

void CommandLine::check_values() const {
  for (const auto& [name, allowed] : allowed_) {
    if (!has(name)) continue;
    const auto& value = values_[name].value();
    if (allowed.range) {
      const auto number = numeric_value(value);
      if (number && !allowed.range->contains(*number)) {
        throw UsageError("--" + name + " = " + value_text(value) + " is outside its range " + allowed.range->text());
      }
    }
    if (!allowed.choices.empty() && !contains(allowed.choices, value_text(value))) {
      std::string listed;
      for (const auto& choice : allowed.choices) listed += (listed.empty() ? "" : ", ") + choice;
      throw UsageError("--" + name + " '" + value_text(value) + "' is not one of " + listed);
    }
  }
}

int CommandLine::get_int_in(const std::string& name, int lo, int hi) const {
  const int value = get<int>(name);
  require(lo <= value && value <= hi, "--" + name + " = " + std::to_string(value) + " is outside the allowed range [" +
                                          std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return value;
}

void CommandLine::require(bool ok, const std::string& message) const {
  if (!ok) throw UsageError(message);
}

std::vector<ResolvedOption> CommandLine::resolved() const {
  std::vector<ResolvedOption> rows;
  for (const auto& [name, value] : values_) {
    if (name == "help") continue;
    std::string source = "default";
    if (contains(from_command_line_, name)) source = "command line";
    else if (contains(from_config_file_, name)) source = "config file";
    rows.push_back({name, value_text(value.value()), source});
  }
  return rows;
}

std::string CommandLine::resolved_json() const {
  nlohmann::json j;
  j["command"] = command_;
  j["defaults"] = nlohmann::json::array();  // the options left at their defaults (what --resume may add)
  for (const auto& row : resolved()) {
    j["options"][row.name] = row.value;
    if (row.source == "default") j["defaults"].push_back(row.name);
  }
  // Bytes that are not UTF-8 (a value is any text) become U+FFFD instead of a JSON error.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void CommandLine::print_resolved(std::ostream& out) const {
  const auto rows = resolved();
  size_t name_width = 6, value_width = 5;
  for (const auto& row : rows) {
    name_width = std::max(name_width, row.name.size());
    value_width = std::max(value_width, std::min<size_t>(row.value.size(), 60));
  }
  out << "mops " << command_ << ": resolved configuration\n";
  out << "  " << std::left << std::setw(int(name_width)) << "option" << "  "
      << std::setw(int(value_width)) << "value" << "  source\n";
  for (const auto& row : rows) {
    out << "  " << std::setw(int(name_width)) << row.name << "  " << std::setw(int(value_width))
        << row.value << "  " << row.source << "\n";
  }
}

}  // namespace mops
