#include "cli_options.h"

#include <algorithm>
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

}  // namespace

CommandLine::CommandLine(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)), options_("Options") {
  options_.add_options()
      ("help,h", "show this help and exit")
      ("config", po::value<std::string>()->value_name("FILE"),
       "INI file of option=value lines (names as on the command line, without --); "
       "command-line options override it");
}

void CommandLine::add_threads_option() {
  options_.add_options()(
      "threads", po::value<int>()->default_value(0)->value_name("N"),
      "cores this process uses; 0 = all of them (under mpirun: the node's cores divided among its ranks), "
      "at most OMP_NUM_THREADS when set")(
      "thread-split", po::value<std::string>()->default_value("blas")->value_name("WHERE"),
      "who gets the N cores: blas (OpenBLAS's matrix products; LibTorch's own ops on 1 thread; "
      "fastest here) or torch (LibTorch's intra-op pool; OpenBLAS on 1 thread). Never both: "
      "their threads would oversubscribe the cores");
}

void CommandLine::add_seed_option() {
  options_.add_options()("seed", po::value<uint64_t>()->default_value(0)->value_name("S"),
                         "random seed; the same seed gives the same result");
}

bool CommandLine::parse(int argc, const char* const* argv, std::ostream& help_out) {
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
    throw UsageError("mops " + command_ + ": " + e.what() + " (see: mops " + command_ + " --help)");
  }
  return true;
}

void CommandLine::store_config_file(const std::string& path) {
  std::ifstream in(path);
  MOPS_CHECK(in, "cannot open config file '" << path << "': " << std::strerror(errno));
  try {
    auto parsed = po::parse_config_file(in, options_, /*allow_unregistered=*/false);
    for (const auto& option : parsed.options) from_config_file_.push_back(option.string_key);
    po::store(parsed, values_);  // values already set on the command line are kept
  } catch (const po::error& e) {
    throw UsageError("config file '" + path + "': " + e.what() + " (see: mops " + command_ + " --help)");
  }
}

int CommandLine::get_int_in(const std::string& name, int lo, int hi) const {
  const int value = get<int>(name);
  MOPS_CHECK(lo <= value && value <= hi, "--" << name << " = " << value
                                               << " is outside the allowed range [" << lo << ", " << hi << "]");
  return value;
}

double CommandLine::get_double_in(const std::string& name, double lo, double hi) const {
  const double value = get<double>(name);
  MOPS_CHECK(lo <= value && value <= hi, "--" << name << " = " << value
                                               << " is outside the allowed range [" << lo << ", " << hi << "]");
  return value;
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
  for (const auto& row : resolved()) j["options"][row.name] = row.value;
  return j.dump();
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
