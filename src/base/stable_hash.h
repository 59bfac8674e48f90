// A seeded 64-bit hash of a string whose value is the same on every machine, compiler and run
// (std::hash is not): it decides which records are sampled, which documents and records go to
// the test split, and whether the ranks of a federated run share one configuration.
#pragma once
#include <cstdint>
#include <string>

namespace mops {

// FNV-1a's step over the bytes of `text` (xor the byte, multiply by the 64-bit FNV prime
// 1099511628211), started from 1469598103934665603 xor (seed * 0x9E3779B97F4A7C15). That start
// is not FNV's offset basis (14695981039346656037, of which it lacks the last digit), so the
// values are not FNV-1a 64's, even for seed 0. It stays as it is: every data sample and split
// made so far depends on it.
uint64_t stable_hash(const std::string& text, uint64_t seed);

}  // namespace mops
