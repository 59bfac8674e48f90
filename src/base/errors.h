// Errors: every check that can fail on user input or a broken file throws mops::Error
// with a message that says what was wrong, where (file:line of the check) and on which
// rank. `main` catches it, prints one line, and exits non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace mops {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Rank shown in error messages; -1 (the default) means a single-process run.
void set_error_rank(int rank);

[[noreturn]] void throw_error(const char* file, int line, const std::string& message);

// Throws "PATH: cannot ACTION: strerror(errno)" unless `ok` (the result of a system call).
void check_syscall(bool ok, const std::string& path, const std::string& action);

}  // namespace mops

// MOPS_CHECK(cond, "text " << value): throw mops::Error with the streamed message.
#define MOPS_CHECK(cond, message)                                   \
  do {                                                              \
    if (!(cond)) {                                                  \
      std::ostringstream mops_check_stream_;                        \
      mops_check_stream_ << message;                                \
      ::mops::throw_error(__FILE__, __LINE__, mops_check_stream_.str()); \
    }                                                               \
  } while (0)

#define MOPS_FAIL(message) MOPS_CHECK(false, message)
