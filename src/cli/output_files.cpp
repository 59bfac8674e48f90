#include "output_files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cli_options.h"
#include "errors.h"

namespace mops {
namespace fs = std::filesystem;

void check_writable_path(const std::string& option, const std::string& path) {
  const std::string named = option + " '" + path + "'";
  if (path.empty()) throw UsageError(option + " is empty; give a file path");
  std::error_code error;
  if (fs::is_directory(path, error)) throw UsageError(named + " is a directory; give a file path inside it");
  fs::path directory = fs::path(path).parent_path();
  if (directory.empty()) directory = ".";
  if (!fs::is_directory(directory, error))
    throw UsageError(named + ": the directory '" + directory.string() + "' does not exist; create it first");
  if (::access(directory.c_str(), W_OK | X_OK) != 0)
    throw UsageError(named + ": the directory '" + directory.string() + "' is not writable (" +
                     std::strerror(errno) + ")");
}

void check_absent(const std::string& option, const std::string& path, const std::string& advice) {
  std::error_code error;
  if (fs::exists(fs::symlink_status(path, error)))
    throw UsageError(option + " '" + path + "' exists already and was left untouched; " + advice);
}

namespace {

// The pid a lock file names, or "unknown".
std::string holder_of(int fd) {
  char text[32] = {};
  const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  return n > 0 ? std::string(text, size_t(n)) : "unknown";
}

// True when `fd` is still the file at `path` (a releasing holder may have unlinked it).
bool is_current(int fd, const std::string& path) {
  struct stat held {}, now {};
  return ::fstat(fd, &held) == 0 && ::stat(path.c_str(), &now) == 0 && held.st_dev == now.st_dev &&
         held.st_ino == now.st_ino;
}

}  // namespace

OutputLock::OutputLock(const std::string& path) : lock_path_(path + ".lock") {
  for (;;) {
    const int fd = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    MOPS_CHECK(fd >= 0, lock_path_ << ": cannot create the lock file of " << path << ": " << std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      const std::string holder = holder_of(fd);
      ::close(fd);
      MOPS_CHECK(error != EWOULDBLOCK, path << " is being written by another process (pid " << holder << ", lock "
                                            << lock_path_ << "); wait for it to end, or stop it, and run again");
      MOPS_FAIL(lock_path_ << ": cannot lock: " << std::strerror(error));
    }
    if (is_current(fd, lock_path_)) {
      fd_ = fd;
      break;
    }
    ::close(fd);  // locked a file its holder had just removed: try again with the new one
  }
  // The pid only feeds the message another process prints; the lock holds without it.
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
}

OutputLock::~OutputLock() {
  ::unlink(lock_path_.c_str());
  ::close(fd_);
}

OutputLocks claim_outputs(const std::string& option, const std::vector<std::string>& paths, bool may_exist,
                          const std::string& advice) {
  OutputLocks locks;
  for (const auto& path : paths) check_writable_path(option, path);
  for (const auto& path : paths) {
    locks.push_back(std::make_unique<OutputLock>(path));
    if (!may_exist) check_absent(option, path, advice);
  }
  return locks;
}

}  // namespace mops
