// Outputs are checked and locked before a command works (src/cli/output_files.h), and files are
// replaced atomically through a temporary file of their own (src/base/atomic_file.h).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "atomic_file.h"
#include "cli_options.h"
#include "output_files.h"
#include "test_support.h"

namespace mops {
namespace {

namespace fs = std::filesystem;

std::string contents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Runs `body` in a child process; its exit code (or 128 + the signal that ended it).
int in_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(AtomicFile, CommitReplacesThePathAndAnAbandonedWriteLeavesNothing) {
  const auto dir = fresh_test_dir("outputs");
  const auto path = dir / "file.bin";
  write_file(path, "old");
  {
    AtomicFile file(path.string());
    file.write("new", 3);
    EXPECT_EQ(contents(path), "old");  // nothing visible before commit
    file.commit();
  }
  EXPECT_EQ(contents(path), "new");
  {
    AtomicFile abandoned(path.string());
    abandoned.write("lost", 4);
  }
  EXPECT_EQ(contents(path), "new");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"file.bin"});
}

TEST(AtomicFile, TwoWritersOfOnePathNeverShareATemporaryFile) {
  const auto dir = fresh_test_dir("outputs");
  const auto path = (dir / "file.bin").string();
  AtomicFile first(path), second(path);
  first.write("first", 5);
  second.write("second", 6);
  EXPECT_EQ(names_in(dir).size(), 2u);  // two temporary files
  first.commit();
  second.commit();  // with one shared PATH.tmp this rename failed ("cannot rename")
  EXPECT_EQ(contents(path), "second");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"file.bin"});
}

TEST(OutputLock, ASecondWriterIsRefusedAndNamesTheHolder) {
  const auto dir = fresh_test_dir("outputs");
  const auto path = (dir / "results.h5").string();
  OutputLock lock(path);
  const int code = in_child([&] {
    const auto message = error_of([&] { OutputLock second(path); });
    const bool names_holder = message.find("being written by another process (pid " + std::to_string(::getppid())) !=
                              std::string::npos;
    return names_holder ? 0 : 1;
  });
  EXPECT_EQ(code, 0);
}

TEST(OutputLock, AKilledHolderBlocksNobodyAndANormalReleaseRemovesTheLockFile) {
  const auto dir = fresh_test_dir("outputs");
  const auto path = (dir / "results.h5").string();
  const int code = in_child([&] {
    OutputLock lock(path);
    ::raise(SIGKILL);
    return 0;
  });
  EXPECT_EQ(code, 128 + SIGKILL);
  EXPECT_TRUE(fs::exists(path + ".lock"));  // left behind by the killed holder, but not held
  {
    OutputLock lock(path);
  }
  EXPECT_FALSE(fs::exists(path + ".lock"));
}

TEST(ClaimOutputs, ExistingFilesDirectoriesAndMissingDirectoriesAreRefusedUntouched) {
  const auto dir = fresh_test_dir("outputs");
  const auto existing = write_file(dir / "done.h5", "finished results");
  auto refused = [](const std::vector<std::string>& paths, bool overwrite) {
    try {
      claim_outputs("--out", paths, overwrite);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(refused({existing}, false).find("exists already and was left untouched; add --overwrite"),
            std::string::npos);
  EXPECT_NE(refused({dir.string()}, false).find("is a directory"), std::string::npos);
  EXPECT_NE(refused({(dir / "no" / "x.h5").string()}, false).find("does not exist; create it first"),
            std::string::npos);
  EXPECT_EQ(contents(existing), "finished results");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"done.h5"});  // no lock files left either
  EXPECT_EQ(refused({existing}, true), "");
}

}  // namespace
}  // namespace mops
