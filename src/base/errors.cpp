#include "errors.h"

#include <cerrno>
#include <cstring>

namespace mops {
namespace {
int g_error_rank = -1;

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}
}  // namespace

void set_error_rank(int rank) { g_error_rank = rank; }

void throw_error(const char* file, int line, const std::string& message) {
  std::ostringstream out;
  out << message << " [" << base_name(file) << ":" << line;
  if (g_error_rank >= 0) out << ", rank " << g_error_rank;
  out << "]";
  throw Error(out.str());
}

void check_syscall(bool ok, const std::string& path, const std::string& action) {
  if (ok) return;
  const int error = errno;
  MOPS_FAIL(path << ": cannot " << action << ": " << std::strerror(error));
}

}  // namespace mops
