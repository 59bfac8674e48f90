// Plain replay driver for the fuzz targets (no libFuzzer, any compiler): runs one target's
// function over every file of the given directories, so that each crash once found stays a
// regression test (ctest fuzz_replay_<target>, label unit). A crash, an escaping exception or a
// violated invariant ends the program abnormally; the last "replay:" line names the file.
//   mops_fuzz_replay TARGET DIR...     mops_fuzz_replay --list
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_target.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  const auto& targets = mops_fuzz::targets();
  if (argc == 2 && std::string(argv[1]) == "--list") {
    for (const auto& target : targets) std::printf("%s\n", target.first.c_str());
    return 0;
  }
  if (argc < 3 || !targets.count(argv[1])) {
    std::fprintf(stderr, "usage: %s TARGET DIR... | --list (targets:", argv[0]);
    for (const auto& target : targets) std::fprintf(stderr, " %s", target.first.c_str());
    std::fprintf(stderr, ")\n");
    return 2;
  }
  const mops_fuzz::Target target = targets.at(argv[1]);
  size_t replayed = 0;
  for (int i = 2; i < argc; ++i) {
    if (!fs::is_directory(argv[i])) {
      std::fprintf(stderr, "replay: %s is not a directory\n", argv[i]);
      return 1;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::recursive_directory_iterator(argv[i])) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && name[0] != '.' && name != "README.md") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      std::printf("replay: %s\n", file.c_str());
      std::fflush(stdout);
      std::ifstream in(file, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      target(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      ++replayed;
    }
  }
  std::printf("replay: %s: %zu files, no finding\n", argv[1], replayed);
  return 0;
}
