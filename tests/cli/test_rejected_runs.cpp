// Nothing lost, nothing silently accepted: a command checks all its options and outputs
// before it reads data or writes, so a rejected run changes no file; an existing output is
// replaced only with --overwrite (or continued with --resume); one writer per file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "output_files.h"
#include "test_support.h"

namespace mops {
namespace {

namespace fs = std::filesystem;

const std::string kModelOptions = " --model " MOPS_SOURCE_DIR "/models/skills7-base.safetensors --tokenizer "
                                  MOPS_SOURCE_DIR "/models/skills7-tokenizer.model";

// A config file of small settings under the command line's options (which override it).
std::string config_file(const std::string& name, const std::string& text) {
  const auto path = fs::path(MOPS_TEST_WORK_DIR) / "rejected" / name;
  fs::create_directories(path.parent_path());
  write_file(path, text);
  return path.string();
}

const std::string kSmallRun =
    "threads = 1\ndata = skills7\nskills7-per-task = 30\np0-steps = 1\ngate-pretrain-steps = 1\nexperts = 2\n"
    "prompts-per-expert = 2\n";

std::string train(const std::string& out, const std::string& extra) {
  static const auto config = config_file("train.ini", kSmallRun + "steps = 4\neval-every = 2\n");
  return "train" + kModelOptions + " --config " + config + " --out " + out + " " + extra;
}

std::string federate(const std::string& out, const std::string& extra) {
  static const auto config = config_file("federate.ini", kSmallRun + "clients = 4\nclients-per-round = 2\n"
                                                         "local-steps = 2\nrounds = 2\n");
  return "federate" + kModelOptions + " --config " + config + " --out " + out + " " + extra;
}

// Every file of `dir` with its contents.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    files[entry.path().filename().string()] = text.str();
  }
  return files;
}

struct Rejected {
  std::string command, message;
};

// Each command exits with 2 and `message`, and leaves `dir` exactly as it was.
void expect_rejected_untouched(const fs::path& dir, const std::vector<Rejected>& cases) {
  const auto before = snapshot(dir);
  for (const auto& [command, message] : cases) {
    const auto run = run_mops(command);
    EXPECT_EQ(run.exit_code, 2) << command << "\n" << run.output;
    EXPECT_NE(run.output.find(message), std::string::npos) << command << "\n" << run.output;
    EXPECT_EQ(snapshot(dir), before) << command;
  }
}

TEST(RejectedRuns, ChangeNoResultsFile) {
  const auto dir = fresh_test_dir("rejected");
  for (const char* name : {"o.prompt.h5", "o.mop.h5", "f.fedprompt.h5", "f.mop.h5"})
    write_file(dir / name, std::string("finished results of ") + name);
  const auto o = (dir / "o.h5").string(), f = (dir / "f.h5").string();
  expect_rejected_untouched(
      dir, {
               {train(o, "--steps 0"), "--steps = 0 is outside its range >= 1"},
               {train(o, "--eval-every -3"), "--eval-every = -3 is outside its range >= 1"},
               {train(o, "--lr nan"), "--lr = nan is outside its range [0, 10]"},
               {train(o, ""), "o.prompt.h5' exists already and was left untouched; add --overwrite"},
               {train((dir / "o.mop.h5").string(), "--method mop"), "o.mop.h5' exists already"},
               {federate(f, "--rounds 0"), "--rounds = 0 is outside its range >= 1"},
               {federate(f, "--local-steps 0"), "--local-steps = 0 is outside its range >= 1"},
               {federate(f, "--lr nan"), "--lr = nan is outside"},
               {federate(f, "--clients-per-round 9"), "--clients-per-round = 9 is outside the allowed range [1, 4]"},
               {federate(f, ""), "exists already and was left untouched; add --resume to continue it, or --overwrite"},
               {federate(f, "--resume --overwrite"), "give one of them"},
           });
}

TEST(RejectedRuns, ResumeWithoutACheckpointSaysHowToStartFresh) {
  const auto dir = fresh_test_dir("rejected");
  expect_rejected_untouched(dir, {{federate((dir / "new.h5").string(), "--resume"),
                                   "--resume: there is no checkpoint to continue (no " + (dir / "new.fedprompt.h5").string() +
                                       " nor " + (dir / "new.mop.h5").string() + "); start a fresh run without --resume"}});
}

TEST(RejectedRuns, ImpossibleOptionsNameTheOptionAndItsRange) {
  const auto dir = fresh_test_dir("rejected");
  const auto o = (dir / "o.h5").string();
  fs::create_directories(dir / "sub");
  const std::string prune = "prune" + kModelOptions + " --data skills7 --sparsity 0.5 --calib-samples 2 ";
  const std::string convert = "convert --model " MOPS_SOURCE_DIR "/models/skills7-base.safetensors ";
  expect_rejected_untouched(
      dir,
      {
          {train(o, "--experts 1 --prompts-per-expert 600"),
           "--experts 1 x --prompts-per-expert 600 = 600 mid prompt positions leave no room for tokens in the "
           "model's max_seq_len 512"},
          {train(o, "--p0-prompts 512"), "--p0-prompts 512 leave no room for tokens"},
          {train(o, "--mid-layer -2"), "--mid-layer = -2 is outside its range >= -1"},
          {train(o, "--mid-layer 4"), "--mid-layer 4 is outside [1, 3] for this model of 4 layers"},
          {train(o, "--gate-layer 3"), "--gate-layer 3 is above L_mid = 2: the gate reads a layer from 0 to L_mid"},
          {train(o, "--experts 2 --gate-top-k 3"), "--gate-top-k 3 is more than the --experts 2"},
          {train(o, "--gate-route hash --gate-noise 1"), "--gate-noise acts on the gate's output, which --gate-route "
                                                         "hash does not use"},
          {train(o, "--gate-route hash --gate-top-k 2"), "--gate-top-k 2 with --gate-route hash: it sends"},
          {train(o, "--gate-route knn --gate-balance 0.01"), "--gate-balance acts on the gate's output, which "
                                                             "--gate-route knn does not use"},
          {train(o, "--gate-route task"), "--gate-route 'task' is not one of gate, hash"},
          {train(o, "--method lora --lora-targets wq,wz"), "--lora-targets: 'wz' is not one of wq, wk, wv, wo, w1, w2, w3"},
          {train(o, "--method lora --lora-targets ,"), "--lora-targets names no matrix"},
          {train(o, "--method lora --lora-rank 0"), "--lora-rank = 0 is outside its range [1, 4096]"},
          {train(o, "--threads 1000"), "--threads = 1000 is outside its range [0, "},
          {train(o, "--activation-cache lots"), "--activation-cache 'lots' is not auto or a size in MiB"},
          {train(o, "--gate-scale bigger"), "--gate-scale 'bigger' is not one of experts, paper"},
          {train((dir / "sub").string(), "--method prompt"), "sub' is a directory; give a file path inside it"},
          {train((dir / "missing" / "o.h5").string(), ""), "does not exist; create it first"},
          {"train --config " + (dir / "sub").string(), "is not a regular file"},
          {"data stats --data skills7 --skills7-per-task -1", "--skills7-per-task = -1 is outside its range [1, 100000]"},
          {"data stats --data skills7 --samples-per-source -1", "--samples-per-source = -1 is outside its range >= 1"},
          {"data stats --data skills7 --seed -1", "--seed = -1 is outside its range >= 0"},
          {"data stats --data skills7 --data-seed -2", "--data-seed = -2 is outside its range >= -1"},
          {"data export --data skills7 --tokenizer x.model --clients 0 --out " + o,
           "--clients = 0 is outside its range [1, 1048576]"},
          {"data export --data skills7 --tokenizer x.model --out " + (dir / "missing" / "d.jsonl").string(),
           "does not exist; create it first"},
          {"generate" + kModelOptions + " --ids 1 --top-p 0", "--top-p = 0 is outside its range (0, 1]"},
          {convert + "--to peft --out " + (dir / "peft").string(), "--prompts RESULTS.h5 goes with --to peft, and --to "
                                                                   "peft needs it"},
          {convert + "--to hf --out " + (dir / "hf").string() + " --tokenizer " + o, "--tokenizer " + o + " is not a file"},
          {convert + "--out " + o + " --tokenizer x.model", "--tokenizer is copied by --to hf only"},
          {"pretrain --tokenizer x.model --out " + o + " --data skills7 --seq-len 600 --max-seq-len 512",
           "--seq-len 600 is longer than --max-seq-len 512"},
          {prune + "--out " + (dir / "missing" / "p.safetensors").string(), "does not exist; create it first"},
          {prune + "--out " + o + " --nm 2:4", "exactly one of --sparsity"},
      });
}

// `mops prune` checks --out before compressing (it used to find out after 30-46 s).
TEST(RejectedRuns, PruneChecksItsOutputBeforeCompressing) {
  const auto dir = fresh_test_dir("rejected");
  const auto existing = write_file(dir / "p.safetensors", "an earlier result");
  const auto run = run_mops("prune" + kModelOptions + " --threads 1 --data skills7 --sparsity 0.5 --calib-samples 2 --out " +
                            existing);
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_NE(run.output.find("exists already"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("calibration:"), std::string::npos) << run.output;
}

TEST(RejectedRuns, AResultsFileBeingWrittenIsRefused) {
  const auto dir = fresh_test_dir("rejected");
  const auto out = (dir / "o.h5").string();
  OutputLock writer(out);  // this process plays the live writer
  const auto run = run_mops(train(out, "--method prompt --overwrite"));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("is being written by another process (pid " + std::to_string(::getpid()) + ", lock " +
                            out + ".lock)"),
            std::string::npos)
      << run.output;
  EXPECT_FALSE(fs::exists(out));
}

// A finished result is kept; --overwrite replaces it; no lock or temporary file stays behind.
TEST(RejectedRuns, OverwriteReplacesAFinishedResultAndLeavesNoLockFile) {
  const auto dir = fresh_test_dir("rejected");
  const auto out = (dir / "o.h5").string();
  ASSERT_EQ(run_mops(train(out, "--method prompt")).exit_code, 0);
  const auto finished = snapshot(dir);
  EXPECT_EQ(finished.size(), 1u);
  const auto again = run_mops(train(out, "--method prompt"));
  EXPECT_EQ(again.exit_code, 2) << again.output;
  EXPECT_EQ(snapshot(dir), finished);
  const auto replaced = run_mops(train(out, "--method prompt --overwrite --seed 5"));
  EXPECT_EQ(replaced.exit_code, 0) << replaced.output;
  const auto after = snapshot(dir);
  EXPECT_EQ(after.size(), 1u);
  EXPECT_NE(after.at("o.h5"), finished.at("o.h5"));
}

// A task without test examples has no perplexity: the table says n/a and why, never "+nan".
TEST(RejectedRuns, ATaskWithoutTestExamplesIsNotAvailableWithANote) {
  const auto dir = fresh_test_dir("rejected");
  std::ofstream jsonl(dir / "data.jsonl");
  for (int i = 0; i < 40; ++i)
    jsonl << R"({"category": "count", "instruction": "Count the items.", "context": ")" << i
          << R"( apples", "response": ")" << i << "\"}\n";
  jsonl << R"({"category": "lonely", "instruction": "Say hello.", "context": "", "response": "hello"})" << "\n";
  jsonl.close();
  const auto run = run_mops("train" + kModelOptions + " --threads 1 --data jsonl:" + (dir / "data.jsonl").string() +
                            " --steps 2 --eval-every 2 --p0-steps 1 --gate-pretrain-steps 1 --experts 2 "
                            "--prompts-per-expert 2 --out " + (dir / "o.h5").string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output.find("nan"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("n/a"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("note: lonely has no test examples"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace mops
