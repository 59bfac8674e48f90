// The project's reproducible random sources, whose output is the same on every machine,
// compiler and standard library (std::*_distribution and std::shuffle are not):
// - SeededRandom: a small SplitMix64 stream (data generation, batches, client schedules,
//   sampling in generation);
// - Xoshiro256: xoshiro256** seeded by SplitMix64, with unbiased integers and normal and
//   Gamma samplers (the client partition);
// - stream_seed / derived_seed: independent streams of one seed, one per key.
#pragma once
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace mops {

// One SplitMix64 step: advances `state` and returns a well-mixed word.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The starting state of stream `key` of `seed`: distinct keys give unrelated streams.
inline uint64_t stream_seed(uint64_t seed, uint64_t key) { return seed ^ (key * 0xD1B54A32D192ED03ULL); }

// One well-mixed word per (seed, key): the first SplitMix64 output of stream `key`.
inline uint64_t derived_seed(uint64_t seed, uint64_t key) {
  uint64_t state = stream_seed(seed, key);
  return splitmix64(state);
}

class SeededRandom {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}

  uint64_t next() { return splitmix64(state_); }
  // Uniform integer in [lo, hi].
  int between(int lo, int hi) { return lo + int(next() % uint64_t(hi - lo + 1)); }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  template <class T>
  const T& pick(const std::vector<T>& items) { return items[next() % items.size()]; }
  template <class T>
  void shuffle(std::vector<T>& items) {  // Fisher-Yates
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[next() % i]);
  }
  // The first `count` items become a random draw without replacement, in random order: the
  // first `count` steps of a Fisher-Yates shuffle from the front.
  template <class T>
  void shuffle_front(std::vector<T>& items, size_t count) {
    for (size_t i = 0; i < count; ++i) std::swap(items[i], items[i + next() % (items.size() - i)]);
  }

 private:
  uint64_t state_;
};

// xoshiro256** with explicit samplers. Each (seed, stream) pair gives an independent stream.
class Xoshiro256 {
 public:
  Xoshiro256(uint64_t seed, uint64_t stream) {
    uint64_t mixed = stream_seed(seed, stream);
    for (auto& word : state_) word = splitmix64(mixed);
  }

  // Next 64 random bits.
  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in (0, 1) from the top 53 bits, centred in its bin so log() is always finite.
  double uniform() { return (double(next() >> 11) + 0.5) * 0x1.0p-53; }

  // Uniform integer in [0, n) for n >= 1, without modulo bias.
  size_t below(size_t n) {
    const uint64_t threshold = (0 - uint64_t(n)) % n;
    for (;;) {
      const uint64_t bits = next();
      if (bits >= threshold) return size_t(bits % n);
    }
  }

  // Fisher-Yates shuffle.
  template <typename T>
  void shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }

  // Standard normal by the Marsaglia polar method (the second value is dropped).
  double normal() {
    for (;;) {
      const double u = 2 * uniform() - 1;
      const double v = 2 * uniform() - 1;
      const double s = u * u + v * v;
      if (s > 0 && s < 1) return u * std::sqrt(-2 * std::log(s) / s);
    }
  }

  // log of a Gamma(shape, 1) draw: Marsaglia-Tsang; shape < 1 uses G(shape + 1) * U^(1/shape).
  // Logs keep tiny draws (small alpha) from underflowing to zero.
  double log_gamma(double shape) {
    if (shape < 1) return log_gamma(shape + 1) + std::log(uniform()) / shape;
    const double d = shape - 1.0 / 3;
    const double c = 1 / std::sqrt(9 * d);
    for (;;) {
      const double x = normal();
      double v = 1 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      const double u = uniform();
      if (u < 1 - 0.0331 * x * x * x * x || std::log(u) < 0.5 * x * x + d * (1 - v + std::log(v)))
        return std::log(d * v);
    }
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace mops
