// Safetensors header validation, with the rules of the reference (Rust) implementation and
// stricter ones where it is lenient: unknown keys in a tensor entry, duplicate JSON keys and
// NUL bytes in the header are errors.
#include "safetensors_layout.h"

#include <algorithm>
#include <limits>

#include "errors.h"
#include "strict_json.h"

namespace mops {
namespace {

constexpr std::size_t kLengthBytes = 8;                  // the uint64 header length
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // the Rust implementation's limit

struct DtypeSize {
  const char* name;
  std::size_t bytes;
};

constexpr DtypeSize kDtypes[] = {{"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8},
                                 {"I8", 1},  {"U8", 1},  {"I32", 4},  {"I64", 8}};

std::uint64_t read_le64(const char* bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string range_string(const SafetensorsEntry& e) {
  return "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) + ")";
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const nlohmann::json& value) {
  MOPS_CHECK(value.is_object(), path << ": __metadata__ is a JSON " << value.type_name()
                                     << ", expected an object of strings");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    MOPS_CHECK(item.is_string(), path << ": __metadata__ value for '" << key << "' is a JSON "
                                      << item.type_name() << ", expected a string");
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

std::vector<int64_t> parse_shape(const std::string& where, const nlohmann::json& shape) {
  MOPS_CHECK(shape.is_array(), where << " has shape of JSON type " << shape.type_name()
                                     << ", expected an array of integers");
  std::vector<int64_t> dims;
  for (const nlohmann::json& dim : shape) {
    MOPS_CHECK(dim.is_number_unsigned() &&
                   dim.get<std::uint64_t>() <= std::uint64_t(std::numeric_limits<int64_t>::max()),
               where << " has invalid dimension " << dim.dump() << " in shape " << shape.dump()
                     << " (dimensions must be non-negative integers)");
    dims.push_back(dim.get<int64_t>());
  }
  return dims;
}

// Checks the entry on its own: its keys, dtype, shape, offsets inside the data section and a
// byte count that matches the shape.
SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& value,
                             std::uint64_t data_size) {
  const std::string where = path + ": tensor '" + name + "'";
  MOPS_CHECK(value.is_object(), where << " is a JSON " << value.type_name()
                                      << ", expected an object with dtype, shape and data_offsets");
  for (const auto& [key, unused] : value.items())
    MOPS_CHECK(key == "dtype" || key == "shape" || key == "data_offsets",
               where << " has unknown entry '" << key << "' (allowed: dtype, shape, data_offsets)");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    MOPS_CHECK(value.contains(key), where << " has no '" << key << "' entry");

  SafetensorsEntry entry;
  const nlohmann::json& dtype = value.at("dtype");
  MOPS_CHECK(dtype.is_string(), where << " has dtype of JSON type " << dtype.type_name() << ", expected a string");
  entry.dtype = dtype.get<std::string>();
  const std::size_t element_bytes = safetensors_dtype_size(entry.dtype);
  MOPS_CHECK(element_bytes > 0, where << " has dtype '" << entry.dtype << "', which is not supported (supported: "
                                      << safetensors_dtype_list() << ")");
  entry.shape = parse_shape(where, value.at("shape"));

  const nlohmann::json& offsets = value.at("data_offsets");
  MOPS_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                 offsets[1].is_number_unsigned(),
             where << " has data_offsets " << offsets.dump() << ", expected two non-negative integers [begin, end]");
  entry.begin = offsets[0].get<std::uint64_t>();
  entry.end = offsets[1].get<std::uint64_t>();
  MOPS_CHECK(entry.begin <= entry.end, where << " has data_offsets " << offsets.dump() << " with end before begin");
  MOPS_CHECK(entry.end <= data_size, path << ": truncated: tensor '" << name << "' needs bytes [" << entry.begin
                                          << ", " << entry.end << ") of the data section but it has only "
                                          << data_size);
  std::uint64_t bytes = element_bytes;
  for (int64_t dim : entry.shape)
    MOPS_CHECK(!__builtin_mul_overflow(bytes, std::uint64_t(dim), &bytes),
               where << " has shape " << shape_string(entry.shape) << ", which is too large");
  MOPS_CHECK(entry.end - entry.begin == bytes,
             where << ": header/size mismatch: shape " << shape_string(entry.shape) << " of " << entry.dtype
                   << " needs " << bytes << " bytes but data_offsets [" << entry.begin << ", " << entry.end
                   << ") hold " << entry.end - entry.begin);
  return entry;
}

// The byte ranges, sorted by begin, must tile [0, data_size): no overlap, no hole, nothing after.
void check_tiling(const std::string& path, const std::map<std::string, SafetensorsEntry>& entries,
                  std::uint64_t data_size) {
  std::vector<std::pair<std::string, SafetensorsEntry>> sorted(entries.begin(), entries.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.second.begin, a.second.end) < std::make_pair(b.second.begin, b.second.end);
  });
  std::uint64_t covered = 0;  // bytes [0, covered) belong to the tensors so far
  std::string last;           // the tensor that ends at `covered`
  for (const auto& [name, e] : sorted) {
    MOPS_CHECK(e.begin >= covered, path << ": tensor '" << name << "' at data_offsets " << range_string(e)
                                        << " overlaps tensor '" << last << "' at " << range_string(entries.at(last))
                                        << " (tensors must not share bytes)");
    MOPS_CHECK(e.begin == covered, path << ": bytes [" << covered << ", " << e.begin
                                        << ") of the data section belong to no tensor (a hole before tensor '"
                                        << name << "')");
    covered = e.end;
    last = name;
  }
  MOPS_CHECK(covered == data_size,
             path << ": " << data_size - covered << " trailing bytes: the data section has " << data_size
                  << " bytes but its tensors end at " << covered
                  << (last.empty() ? " (there are none)" : " (tensor '" + last + "')"));
}

}  // namespace

std::size_t safetensors_dtype_size(const std::string& dtype) {
  for (const DtypeSize& info : kDtypes)
    if (dtype == info.name) return info.bytes;
  return 0;
}

std::string safetensors_dtype_list() {
  std::string list;
  for (const DtypeSize& info : kDtypes) list += (list.empty() ? "" : ", ") + std::string(info.name);
  return list;
}

std::string safetensors_signature_problem(const char* head, std::size_t head_size, std::uint64_t file_size) {
  if (file_size < kLengthBytes)
    return "truncated: the file has " + std::to_string(file_size) + " bytes, fewer than the 8-byte header length";
  const std::uint64_t header_size = read_le64(head);
  if (header_size > kMaxHeaderBytes)
    return "header length " + std::to_string(header_size) + " is over the limit of " +
           std::to_string(kMaxHeaderBytes) + " bytes (not a safetensors file)";
  if (header_size > file_size - kLengthBytes)
    return "header length " + std::to_string(header_size) + " is larger than the " +
           std::to_string(file_size - kLengthBytes) + " bytes after it (truncated or not a safetensors file)";
  if (header_size == 0 || head_size <= kLengthBytes || head[kLengthBytes] != '{')
    return "the header does not start with '{' (not a safetensors file)";
  return "";
}

SafetensorsLayout parse_safetensors_layout(const std::string& path, const char* bytes, std::size_t size) {
  const std::string problem = safetensors_signature_problem(bytes, size, size);
  MOPS_CHECK(problem.empty(), path << ": " << problem);
  SafetensorsLayout layout;
  layout.data_start = kLengthBytes + read_le64(bytes);
  const std::uint64_t data_size = size - layout.data_start;
  const nlohmann::json header = parse_strict_json(path + ": header", bytes + kLengthBytes, bytes + layout.data_start);
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__")
      layout.metadata = parse_metadata(path, value);
    else
      layout.entries.emplace(name, parse_entry(path, name, value, data_size));
  }
  check_tiling(path, layout.entries, data_size);
  return layout;
}

}  // namespace mops
