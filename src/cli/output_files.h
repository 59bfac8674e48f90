// The files a command writes, checked before it reads data or computes anything, and locked
// for the whole run.
//
// Rules (README, "The mops command"):
// - An output path that is a directory, whose directory is missing or not writable, or that
//   exists when the command may not replace it, is a UsageError before any file is touched.
// - An existing file is replaced only when asked (--overwrite; `mops federate --resume` keeps
//   and continues its own files).
// - One writer per file: an exclusive flock(2) on PATH.lock (which holds the writer's pid) for
//   the life of an OutputLock. A second process asking for the same path is refused at once.
//   The kernel drops the lock when its process dies, so a killed run never blocks the next
//   run or its --resume; the lock file is removed when the lock is released normally.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace mops {

// Throws UsageError naming `option` unless `path` could be written: not empty, not a
// directory, and its directory exists and is writable.
void check_writable_path(const std::string& option, const std::string& path);

// Throws UsageError naming `option` when `path` exists; `advice` ends the message ("add
// --overwrite to replace it").
void check_absent(const std::string& option, const std::string& path, const std::string& advice);

class OutputLock {
 public:
  // Takes the lock on `path` (an Error naming the holder's pid when another process has it).
  explicit OutputLock(const std::string& path);
  ~OutputLock();  // removes PATH.lock, then releases the lock
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

  const std::string& lock_path() const { return lock_path_; }

 private:
  std::string lock_path_;
  int fd_ = -1;
};

using OutputLocks = std::vector<std::unique_ptr<OutputLock>>;

// What a command does with its outputs before any work: every path writable and locked, and
// absent unless `may_exist` (otherwise check_absent with `advice`). Releasing the locks
// (destroying them) undoes all of it.
OutputLocks claim_outputs(const std::string& option, const std::vector<std::string>& paths, bool may_exist,
                          const std::string& advice = "add --overwrite to replace it");

}  // namespace mops
