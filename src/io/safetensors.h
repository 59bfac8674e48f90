// Safetensors files: a read-only, memory-mapped reader that validates the whole layout
// (src/io/safetensors_layout.h) when it opens a file, and an atomic writer (a temporary file of
// its own, then rename).
#pragma once
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mops {

class SafetensorsReader {
 public:
  // Maps the file (MAP_PRIVATE, so in-place edits of returned tensors are copy-on-write
  // and never reach the file) and validates its layout; throws mops::Error on any defect.
  explicit SafetensorsReader(const std::string& path);

  const std::string& path() const;
  const std::map<std::string, std::string>& metadata() const;
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;
  std::string dtype(const std::string& name) const;  // "F32", "BF16", ...

  // In its stored dtype. Zero-copy when the data is aligned for the element type (the
  // tensor keeps the mapping alive), a copy otherwise; valid after the reader is gone.
  torch::Tensor tensor(const std::string& name) const;
  // Converted to float32; only for F32, F16, BF16 and F64 tensors.
  torch::Tensor float_tensor(const std::string& name) const;

 private:
  struct Mapping;
  struct Entry {
    torch::ScalarType type = torch::kFloat;
    std::vector<int64_t> shape;
    std::size_t offset = 0;  // from the start of the file
    std::size_t bytes = 0;
  };

  const Entry& entry(const std::string& name) const;

  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors in their own dtype (moved to CPU, made contiguous) in the given order,
// metadata as "__metadata__" (omitted when empty). Writes a temporary PATH.tmp.XXXXXX of its
// own (removed on any failure), then renames it to PATH, so a crash never leaves a
// half-written file at PATH and writers of the same PATH never share a temporary file.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace mops
