// Safetensors files: a read-only, memory-mapped reader that validates the whole header
// when it opens a file, and an atomic writer (write PATH.tmp, then rename).
#pragma once
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

namespace mops {

class SafetensorsReader {
 public:
  // Maps the file (MAP_PRIVATE, so in-place edits of returned tensors are copy-on-write
  // and never reach the file) and validates its header; throws mops::Error on any defect.
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

  void parse_header(const char* json, std::size_t json_size);
  void parse_metadata(const nlohmann::json& value);
  Entry parse_entry(const std::string& name, const nlohmann::json& value) const;
  std::size_t data_size() const;
  const Entry& entry(const std::string& name) const;

  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  std::size_t data_start_ = 0;  // 8 + header length
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors in their own dtype (moved to CPU, made contiguous) in the given order,
// metadata as "__metadata__" (omitted when empty). Writes PATH.tmp, then renames it to
// PATH, so a crash never leaves a half-written file at PATH.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace mops
