// The command line: config file under command-line overrides, where each value came from,
// range checks, and the `mops` binary's exit codes and messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "build_paths.h"
#include "cli_options.h"
#include "command_start.h"
#include "test_support.h"

namespace mops {
namespace {

CommandLine example_command() {
  CommandLine cl("example", "An example command.");
  cl.options().add_options()
      ("steps", po::value<int>()->default_value(10), "steps")
      ("lr", po::value<double>()->default_value(0.1), "learning rate")
      ("name", po::value<std::string>()->default_value("x"), "a name");
  cl.add_seed_option();
  return cl;
}

std::string write_config(const std::string& name, const std::string& text) {
  const std::string dir = MOPS_TEST_WORK_DIR "/cli";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

bool parse(CommandLine& cl, std::vector<std::string> args) {
  args.insert(args.begin(), "example");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream help;
  return cl.parse(int(argv.size()), argv.data(), help);
}

std::string source_of(const CommandLine& cl, const std::string& name) {
  for (const auto& row : cl.resolved()) {
    if (row.name == name) return row.source;
  }
  return "";
}

TEST(CommandLine, CommandLineOverridesConfigFileOverridesDefault) {
  const auto config = write_config("override.ini", "steps = 50\nlr = 0.5\n");
  auto cl = example_command();
  ASSERT_TRUE(parse(cl, {"--config", config, "--lr", "0.25"}));
  EXPECT_EQ(cl.get<int>("steps"), 50);
  EXPECT_DOUBLE_EQ(cl.get<double>("lr"), 0.25);
  EXPECT_EQ(cl.get<std::string>("name"), "x");
  EXPECT_EQ(source_of(cl, "steps"), "config file");
  EXPECT_EQ(source_of(cl, "lr"), "command line");
  EXPECT_EQ(source_of(cl, "name"), "default");
  EXPECT_NE(cl.resolved_json().find("\"steps\":\"50\""), std::string::npos) << cl.resolved_json();
  // The options left at their defaults are listed (what --resume may find missing in an older file).
  const auto defaults = nlohmann::json::parse(cl.resolved_json()).at("defaults");
  EXPECT_NE(std::find(defaults.begin(), defaults.end(), "name"), defaults.end()) << defaults;
  EXPECT_EQ(std::find(defaults.begin(), defaults.end(), "steps"), defaults.end()) << defaults;
  EXPECT_EQ(std::find(defaults.begin(), defaults.end(), "lr"), defaults.end()) << defaults;
}

TEST(CommandLine, MistakesAreUsageErrorsThatNameTheProblem) {
  auto unknown = example_command();
  try {
    parse(unknown, {"--stepz", "3"});
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("stepz"), std::string::npos) << e.what();
  }
  auto bad_value = example_command();
  EXPECT_THROW(parse(bad_value, {"--steps", "many"}), UsageError);
  const auto config = write_config("unknown.ini", "stepz = 3\n");
  auto bad_config = example_command();
  try {
    parse(bad_config, {"--config", config});
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown.ini"), std::string::npos) << e.what();
  }
  auto missing_config = example_command();
  EXPECT_THROW(parse(missing_config, {"--config", "/nonexistent.ini"}), Error);
}

TEST(CommandLine, RangeChecksNameTheOptionAndTheRange) {
  auto cl = example_command();
  ASSERT_TRUE(parse(cl, {"--steps", "0"}));
  try {
    cl.get_int_in("steps", 1, 100);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--steps = 0 is outside the allowed range [1, 100]"), std::string::npos)
        << e.what();
  }
}

// Numeric options declare their range: it is in --help and checked when parsing, so a bad
// value stops the command before it reads or writes anything. Integers are signed: "-1" for
// a count or a seed is out of range, never 2^64 - 1.
CommandLine ranged_command() {
  CommandLine cl("example", "An example command.");
  cl.add_number<int>("count", 3, Range::at_least(1), "a count");
  cl.add_number<double>("fraction", 0.5, Range::open(0, 1), "a fraction");
  cl.add_number<int64_t>("big", std::nullopt, Range::closed(-1, 1000), "optional");
  cl.add_choice("mode", "a", {"a", "b"}, "a mode");
  cl.add_seed_option();
  return cl;
}

std::string usage_error(std::vector<std::string> args) {
  auto cl = ranged_command();
  try {
    parse(cl, std::move(args));
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(CommandLine, NumericOptionsAreRangeCheckedWhenParsed) {
  EXPECT_EQ(usage_error({"--count", "5", "--fraction", "0.25", "--big", "-1", "--seed", "7"}), "");
  EXPECT_NE(usage_error({"--count", "0"}).find("--count = 0 is outside its range >= 1"), std::string::npos);
  EXPECT_NE(usage_error({"--count", "-1"}).find("--count = -1 is outside its range >= 1"), std::string::npos);
  EXPECT_NE(usage_error({"--seed", "-1"}).find("--seed = -1 is outside its range >= 0"), std::string::npos);
  EXPECT_NE(usage_error({"--fraction", "1"}).find("outside its range (0, 1)"), std::string::npos);
  EXPECT_NE(usage_error({"--fraction", "nan"}).find("--fraction = nan is outside"), std::string::npos);
  EXPECT_NE(usage_error({"--big", "1001"}).find("[-1, 1000]"), std::string::npos);
  EXPECT_NE(usage_error({"--count", "99999999999"}).find("count"), std::string::npos);  // beyond int
  EXPECT_NE(usage_error({"--mode", "c"}).find("--mode 'c' is not one of a, b"), std::string::npos);
  const auto config = write_config("ranged.ini", "count = -4\n");
  EXPECT_NE(usage_error({"--config", config}).find("--count = -4"), std::string::npos);
  EXPECT_NE(usage_error({"--config", MOPS_TEST_WORK_DIR}).find("is not a regular file"), std::string::npos);

  auto cl = ranged_command();
  std::vector<const char*> argv = {"example", "--help"};
  std::ostringstream help;
  cl.parse(2, argv.data(), help);
  for (const char* shown : {"a count (range: >= 1)", "a fraction (range: (0, 1))", "(range: [-1, 1000])",
                            "a | b: a mode"})
    EXPECT_NE(help.str().find(shown), std::string::npos) << shown << "\n" << help.str();
}

// Found by fuzz/targets/ini_config.cpp: Boost's error message for text holding "%value%" never
// finished (it replaces the placeholder with text that holds it again), and a value that is
// not UTF-8 made resolved_json throw.
TEST(CommandLine, ErrorsAboutPlaceholderTextAndValuesThatAreNotUtf8AreHandled) {
  auto cl = example_command();
  EXPECT_THROW(parse(cl, {"--steps", "%value%"}), UsageError);
  auto unknown = example_command();
  EXPECT_THROW(parse(unknown, {"--%canonical_option%", "1"}), UsageError);
  for (const char* text : {"steps = %value%\n", "mode%invalid_line%\n"}) {
    const auto config = write_config("placeholder.ini", text);
    auto from_file = example_command();
    EXPECT_THROW(parse(from_file, {"--config", config}), UsageError) << text;
  }
  auto text = example_command();
  ASSERT_TRUE(parse(text, {"--name", "caf\xe9"}));
  EXPECT_NE(text.resolved_json().find("caf\xef\xbf\xbd"), std::string::npos) << text.resolved_json();
}

TEST(CommandLine, HelpIsPrintedAndStopsTheCommand) {
  auto cl = example_command();
  EXPECT_FALSE(parse(cl, {"--help"}));
}

TEST(CommandLine, IdListsParseAndRejectGarbage) {
  EXPECT_EQ(parse_id_list("1 2,3  4", "ids"), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_THROW(parse_id_list("1 x", "ids"), Error);
  EXPECT_THROW(parse_id_list("-1", "ids"), Error);
  EXPECT_THROW(parse_id_list(" ", "ids"), Error);
}

TEST(MopsBinary, HelpListsTheCommands) {
  const auto run = run_mops("--help");
  EXPECT_EQ(run.exit_code, 0);
  for (const char* command : {"generate", "pretrain", "tokenizer train", "convert", "info"}) {
    EXPECT_NE(run.output.find(command), std::string::npos) << command;
  }
  const auto sub = run_mops("generate --help");
  EXPECT_EQ(sub.exit_code, 0);
  EXPECT_NE(sub.output.find("--max-new-tokens"), std::string::npos) << sub.output;
}

TEST(MopsBinary, UsageMistakesExitWithTwo) {
  EXPECT_EQ(run_mops("no-such-command").exit_code, 2);
  const auto run = run_mops("generate --no-such-option 1");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("no-such-option"), std::string::npos) << run.output;
}

TEST(MopsBinary, RunErrorsExitWithOneAndOneClearLine) {
  const auto run = run_mops("generate --model /nonexistent.bin --ids 1 --print-ids");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("model '/nonexistent.bin' does not exist"), std::string::npos) << run.output;
}

// Where the cores go is printed at start and can be changed; a bad choice names the option. The
// torch wheel's LibTorch has MKL inside, on LibTorch's own threads: the cores are LibTorch's
// whatever --thread-split says (it matters only where the BLAS is OpenBLAS).
TEST(MopsBinary, ThreadSettingsArePrintedAndOverridable) {
  const std::string ids =
      "generate --model " MOPS_SOURCE_DIR "/models/skills7-base.safetensors --ids 1 --max-new-tokens 1 --print-ids --greedy";
  auto run = run_mops(ids + " --threads 2");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  const std::string two = "threads: 2 cores to LibTorch: LibTorch intra-op 2, OpenBLAS n/a (BLAS: MKL inside LibTorch";
  EXPECT_NE(run.output.find(two), std::string::npos) << run.output;
  run = run_mops(ids + " --threads 2 --thread-split torch");
  EXPECT_NE(run.output.find(two), std::string::npos) << run.output;
  run = run_command("OMP_NUM_THREADS=1 " MOPS_BINARY " " + ids + " 2>&1");
  EXPECT_NE(run.output.find("threads: 1 core to LibTorch: LibTorch intra-op 1"), std::string::npos) << run.output;
  run = run_mops(ids + " --thread-split both");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("--thread-split 'both' is not one of blas, torch"), std::string::npos) << run.output;
}

// --device: auto is the CPU here and says so with the LibTorch version; cuda without a GPU is an
// error (exit 1) that says there is none; a bad name is a usage error naming the choices.
TEST(MopsBinary, DeviceIsPrintedAndCudaWithoutAGpuIsAnError) {
  const std::string ids =
      "generate --model " MOPS_SOURCE_DIR "/models/skills7-base.safetensors --ids 1 --max-new-tokens 1 --print-ids --greedy";
  auto run = run_command("CUDA_VISIBLE_DEVICES= " MOPS_BINARY " " + ids + " 2>&1");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("device: cpu, backbone float32, LibTorch 2.11.0"), std::string::npos) << run.output;
  run = run_command("CUDA_VISIBLE_DEVICES= " MOPS_BINARY " " + ids + " --device cuda 2>&1");
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("--device cuda: no CUDA GPU is visible to this process"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("use --device cpu"), std::string::npos) << run.output;
  run = run_mops(ids + " --device tpu");
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_NE(run.output.find("--device"), std::string::npos) << run.output;
  run = run_mops(ids + " --device cpu --dtype bfloat16");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("device: cpu, backbone bfloat16"), std::string::npos) << run.output;
  run = run_command("CUDA_VISIBLE_DEVICES= " MOPS_BINARY " info --model " MOPS_SOURCE_DIR "/models/skills7-base.safetensors 2>&1");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("runs on (auto)      cpu, backbone float32, LibTorch 2.11.0"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace mops
