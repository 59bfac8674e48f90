// A progress line for long loops: done/total, rate, elapsed, ETA and caller-supplied fields.
// On a terminal it redraws one line; otherwise (logs, CI) it prints a line every few seconds.
#pragma once
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace mops {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit, std::ostream& out);

  // `done` units finished; `fields` is extra text such as "loss 2.31 | 5400 tok/s".
  void update(int64_t done, const std::string& fields = "");
  void finish(const std::string& fields = "");

  double elapsed_seconds() const;

 private:
  void print(int64_t done, const std::string& fields, bool final);

  std::string label_, unit_;
  int64_t total_;
  std::ostream& out_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

// "1h02m", "3m07s", "12.4s"
std::string format_duration(double seconds);

}  // namespace mops
