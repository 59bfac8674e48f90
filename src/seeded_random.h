// A small seeded random stream (SplitMix64) whose output is the same on every machine,
// compiler and standard library (std::*_distribution is not).
#pragma once
#include <cstdint>
#include <vector>

namespace mops {

class SeededRandom {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform integer in [lo, hi].
  int between(int lo, int hi) { return lo + int(next() % uint64_t(hi - lo + 1)); }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  template <class T>
  const T& pick(const std::vector<T>& items) { return items[next() % items.size()]; }
  template <class T>
  void shuffle(std::vector<T>& items) {  // Fisher-Yates
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[next() % i]);
  }

 private:
  uint64_t state_;
};

}  // namespace mops
