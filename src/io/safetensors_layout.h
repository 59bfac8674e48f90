// The layout of a safetensors file, validated byte for byte without touching the tensor data:
// an 8-byte little-endian header length N (at most 100 MB), N bytes of JSON, then the data
// section, which the tensors' byte ranges cover exactly. Torch-free (it is fuzzed alone).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mops {

struct SafetensorsEntry {
  std::string dtype;  // "F32", "BF16", ...
  std::vector<int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte range [begin, end) relative to the data section
};

struct SafetensorsLayout {
  std::uint64_t data_start = 0;  // 8 + N: where the data section starts in the file
  std::map<std::string, SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;  // "__metadata__"
};

// `bytes` is the whole file (size bytes). Validates everything; throws mops::Error naming
// `path`, the tensor and the rule.
SafetensorsLayout parse_safetensors_layout(const std::string& path, const char* bytes, std::size_t size);

std::size_t safetensors_dtype_size(const std::string& dtype);  // 0 when unknown
std::string safetensors_dtype_list();                          // "F32, F16, ..."

// Why a file of `file_size` bytes starting with `head` (head_size >= min(9, file_size) bytes)
// is no safetensors file: a header length beyond the limit or the file, or a header that does
// not start with '{'. Empty when it may be one.
std::string safetensors_signature_problem(const char* head, std::size_t head_size, std::uint64_t file_size);

}  // namespace mops
