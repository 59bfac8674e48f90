// One fuzz target: a function that takes one input (bytes) and returns 0. A parser rejecting the
// input with mops::Error is the expected outcome for bad input; any other exception escaping, a
// crash, a sanitizer report, a hang or a violated invariant of an accepted result is a finding.
//
// Each fuzz/targets/<name>.cpp ends with MOPS_FUZZ_TARGET(<name>, function). Built two ways:
//  - fuzz/CMakeLists.txt (clang, -DMOPS_LIBFUZZER): the macro defines LLVMFuzzerTestOneInput,
//    one libFuzzer binary fuzz_<name> per target;
//  - tests/CMakeLists.txt (the main build, any compiler): the macro registers the function by
//    name, and fuzz/replay_main.cpp runs it over the corpus and regression files.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

namespace mops_fuzz {

using Target = int (*)(const std::uint8_t* data, std::size_t size);

inline std::map<std::string, Target>& targets() {
  static std::map<std::string, Target> registered;
  return registered;
}

struct Registration {
  Registration(const char* name, Target target) { targets()[name] = target; }
};

[[noreturn]] inline void invariant_failed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "fuzz invariant violated: %s (%s:%d)\n", condition, file, line);
  std::fflush(stderr);
  __builtin_trap();
}

}  // namespace mops_fuzz

// An invariant of an accepted result: traps (a finding) when it does not hold.
#define MOPS_FUZZ_ASSERT(condition)                                                   \
  do {                                                                                \
    if (!(condition)) ::mops_fuzz::invariant_failed(#condition, __FILE__, __LINE__); \
  } while (0)

#ifdef MOPS_LIBFUZZER
#define MOPS_FUZZ_TARGET(name, function)                                               \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    return function(data, size);                                                      \
  }
#else
#define MOPS_FUZZ_TARGET(name, function) \
  static const ::mops_fuzz::Registration mops_fuzz_registration_##name(#name, function);
#endif
