// A file that appears whole or not at all: the bytes go to a temporary file of its own next to
// PATH (PATH.tmp.XXXXXX, unique per writer, so two writers of one path never share it), which
// commit() flushes to disk and renames over PATH. Destroyed without commit(), it removes the
// temporary file and leaves PATH as it was.
#pragma once
#include <cstddef>
#include <string>

namespace mops {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates the temporary file; an Error naming PATH if it cannot
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, std::size_t size);
  void commit();  // fsync, close, rename over PATH

 private:
  std::string path_, temporary_;
  int fd_ = -1;
  bool committed_ = false;
};

// PATH's whole new content: `size` bytes at `data` through an AtomicFile, committed.
void write_file_atomically(const std::string& path, const void* data, std::size_t size);

}  // namespace mops
