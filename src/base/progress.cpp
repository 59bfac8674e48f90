#include "progress.h"

#include <unistd.h>

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace mops {

std::string format_duration(double seconds) {
  std::ostringstream out;
  if (seconds < 60) {
    out << std::fixed << std::setprecision(1) << seconds << "s";
  } else if (seconds < 3600) {
    const int s = int(seconds);
    out << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
  } else {
    const int m = int(seconds / 60);
    out << m / 60 << "h" << std::setw(2) << std::setfill('0') << m % 60 << "m";
  }
  return out.str();
}

Progress::Progress(std::string label, int64_t total, std::string unit, std::ostream& out)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), out_(out),
      terminal_(&out == &std::cerr ? isatty(STDERR_FILENO) : (&out == &std::cout && isatty(STDOUT_FILENO))),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, const std::string& fields) {
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (since < (terminal_ ? 0.25 : 5.0)) return;
  last_print_ = now;
  print(done, fields, false);
}

void Progress::finish(const std::string& fields) { print(total_, fields, true); }

void Progress::print(int64_t done, const std::string& fields, bool final) {
  const double elapsed = elapsed_seconds();
  std::ostringstream line;
  line << label_ << " " << done << "/" << total_ << " " << unit_;
  if (total_ > 0) line << " (" << int(100.0 * done / total_) << "%)";
  if (!fields.empty()) line << " | " << fields;
  line << " | " << format_duration(elapsed);
  if (!final && done > 0 && done < total_) {
    line << " | ETA " << format_duration(elapsed / done * (total_ - done));
  }
  if (terminal_) {
    out_ << "\r\033[K" << line.str() << (final ? "\n" : "") << std::flush;
  } else {
    out_ << line.str() << "\n" << std::flush;
  }
}

}  // namespace mops
