#include "atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "errors.h"

namespace mops {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  std::vector<char> name(path_.begin(), path_.end());
  for (char c : std::string(".tmp.XXXXXX")) name.push_back(c);
  name.push_back('\0');
  fd_ = ::mkostemp(name.data(), O_CLOEXEC);
  check_syscall(fd_ >= 0, path_, "create a temporary file next to it");
  temporary_ = name.data();
  check_syscall(::fchmod(fd_, 0644) == 0, path_, "set the permissions of " + temporary_);
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  std::remove(temporary_.c_str());
}

void AtomicFile::write(const void* data, std::size_t size) {
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd_, bytes, size);
    if (written < 0 && errno == EINTR) continue;
    check_syscall(written > 0, path_, "write " + temporary_);
    bytes += written;
    size -= static_cast<std::size_t>(written);
  }
}

void AtomicFile::commit() {
  check_syscall(::fsync(fd_) == 0, path_, "flush " + temporary_ + " to disk");
  const int fd = fd_;
  fd_ = -1;
  check_syscall(::close(fd) == 0, path_, "close " + temporary_);
  check_syscall(std::rename(temporary_.c_str(), path_.c_str()) == 0, path_, "rename " + temporary_ + " to it");
  committed_ = true;
}

void write_file_atomically(const std::string& path, const void* data, std::size_t size) {
  AtomicFile file(path);
  file.write(data, size);
  file.commit();
}

}  // namespace mops
