// Fuzz target (a): the safetensors reader's layout validation (parse_safetensors_layout in
// src/io/safetensors_layout.cpp) on the input as a whole file: 8-byte little-endian header length,
// JSON header (dtype, shape, data_offsets per tensor; __metadata__), data section.
// Invariants of an accepted layout: data_start = 8 + the header length, inside the file, the
// signature check agrees; every entry has a known dtype, non-negative dimensions and exactly
// product(shape) * dtype size bytes; sorted by offset the entries tile the data section (no
// overlap, no hole, nothing after); the header is a JSON object starting with '{'.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "fuzz_target.h"
#include "safetensors_layout.h"

namespace {

std::uint64_t le64(const char* bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

void check_layout(const mops::SafetensorsLayout& layout, const char* bytes, std::size_t size) {
  MOPS_FUZZ_ASSERT(size >= 10);  // 8 length bytes and at least "{}"
  MOPS_FUZZ_ASSERT(mops::safetensors_signature_problem(bytes, size, size).empty());
  MOPS_FUZZ_ASSERT(layout.data_start == 8 + le64(bytes));
  MOPS_FUZZ_ASSERT(layout.data_start >= 10 && layout.data_start <= size);
  MOPS_FUZZ_ASSERT(bytes[8] == '{');
  const std::uint64_t data_size = size - layout.data_start;

  std::vector<const mops::SafetensorsEntry*> sorted;
  for (const auto& [name, entry] : layout.entries) {
    MOPS_FUZZ_ASSERT(name != "__metadata__");
    const std::size_t element = mops::safetensors_dtype_size(entry.dtype);
    MOPS_FUZZ_ASSERT(element > 0);
    unsigned __int128 bytes_needed = element;
    for (int64_t dim : entry.shape) {
      MOPS_FUZZ_ASSERT(dim >= 0);
      bytes_needed *= static_cast<std::uint64_t>(dim);
      if (bytes_needed > data_size) bytes_needed = data_size + 1;  // stays comparable, no wrap
    }
    MOPS_FUZZ_ASSERT(entry.begin <= entry.end && entry.end <= data_size);
    MOPS_FUZZ_ASSERT(bytes_needed == entry.end - entry.begin);
    sorted.push_back(&entry);
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
    return std::make_pair(a->begin, a->end) < std::make_pair(b->begin, b->end);
  });
  std::uint64_t covered = 0;
  for (const auto* entry : sorted) {
    MOPS_FUZZ_ASSERT(entry->begin == covered);
    covered = entry->end;
  }
  MOPS_FUZZ_ASSERT(covered == data_size);
}

int one_input(const std::uint8_t* data, std::size_t size) {
  // A copy of exactly SIZE bytes on the heap, so that ASan sees any read past the end.
  std::vector<char> file(data, data + size);
  const char* bytes = file.empty() ? nullptr : file.data();
  mops::SafetensorsLayout layout;
  try {
    layout = mops::parse_safetensors_layout("fuzz.safetensors", bytes, size);
  } catch (const mops::Error&) {
    return 0;  // rejected: expected for bad input
  }
  check_layout(layout, bytes, size);
  return 0;
}

}  // namespace

MOPS_FUZZ_TARGET(safetensors, one_input)
