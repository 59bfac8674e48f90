// Safetensors reader (mmap + full header validation) and atomic writer.
// Layout: 8-byte little-endian header length N, N bytes of JSON, then the data section.
#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "errors.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors stores little-endian data, which this code copies as is");

namespace mops {
namespace {

constexpr std::size_t kLengthBytes = 8;  // the uint64 header length

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
};

constexpr DtypeInfo kDtypes[] = {
    {"F32", torch::kFloat}, {"F16", torch::kHalf},  {"BF16", torch::kBFloat16},
    {"F64", torch::kDouble}, {"I8", torch::kChar},  {"U8", torch::kByte},
    {"I32", torch::kInt},    {"I64", torch::kLong},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const DtypeInfo& info : kDtypes)
    if (name == info.name) return &info;
  return nullptr;
}

const DtypeInfo* find_dtype(torch::ScalarType type) {
  for (const DtypeInfo& info : kDtypes)
    if (type == info.type) return &info;
  return nullptr;
}

std::string supported_dtypes() {
  std::string list;
  for (const DtypeInfo& info : kDtypes) list += (list.empty() ? "" : ", ") + std::string(info.name);
  return list;
}

// Throws "PATH: cannot ACTION: strerror(errno)" unless `ok`.
void check_syscall(bool ok, const std::string& path, const char* action) {
  if (ok) return;
  const int error = errno;
  MOPS_FAIL(path << ": cannot " << action << ": " << std::strerror(error));
}

// Owns a file descriptor.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
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

std::pair<std::uint64_t, std::uint64_t> parse_offsets(const std::string& where,
                                                      const nlohmann::json& offsets) {
  MOPS_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                 offsets[1].is_number_unsigned(),
             where << " has data_offsets " << offsets.dump()
                   << ", expected two non-negative integers [begin, end]");
  const auto begin = offsets[0].get<std::uint64_t>();
  const auto end = offsets[1].get<std::uint64_t>();
  MOPS_CHECK(begin <= end, where << " has data_offsets " << offsets.dump() << " with end before begin");
  return {begin, end};
}

std::uint64_t byte_count(const std::string& where, const std::vector<int64_t>& shape,
                         torch::ScalarType type) {
  std::uint64_t bytes = c10::elementSize(type);
  for (int64_t dim : shape)
    MOPS_CHECK(!__builtin_mul_overflow(bytes, std::uint64_t(dim), &bytes),
               where << " has shape " << shape_string(shape) << ", which is too large");
  return bytes;
}

}  // namespace

// The whole file, mapped private and writable: writes go to private copies of the pages.
struct SafetensorsReader::Mapping {
  char* data = nullptr;
  std::size_t size = 0;

  Mapping(const std::string& path, int fd, std::size_t file_size) : size(file_size) {
    void* mapped = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    check_syscall(mapped != MAP_FAILED, path, "memory-map the file");
    data = static_cast<char*>(mapped);
  }
  ~Mapping() { ::munmap(data, size); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
};

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  {
    FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    check_syscall(fd.get() >= 0, path, "open safetensors file");
    struct stat info {};
    check_syscall(::fstat(fd.get(), &info) == 0, path, "stat the file");
    MOPS_CHECK(S_ISREG(info.st_mode), path << ": is not a regular file");
    const auto file_size = static_cast<std::size_t>(info.st_size);
    MOPS_CHECK(file_size >= kLengthBytes, path << ": truncated: the file has " << file_size
                                                << " bytes, fewer than the 8-byte header length");
    mapping_ = std::make_shared<Mapping>(path, fd.get(), file_size);
  }
  std::uint64_t header_size = 0;
  std::memcpy(&header_size, mapping_->data, kLengthBytes);
  const std::size_t after_length = mapping_->size - kLengthBytes;
  MOPS_CHECK(header_size <= after_length,
             path_ << ": header length " << header_size << " is larger than the " << after_length
                   << " bytes after it (truncated or not a safetensors file)");
  data_start_ = kLengthBytes + header_size;
  parse_header(mapping_->data + kLengthBytes, header_size);
}

void SafetensorsReader::parse_header(const char* json, std::size_t json_size) {
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(json, json + json_size);
  } catch (const nlohmann::json::parse_error& e) {
    MOPS_FAIL(path_ << ": header is not valid JSON: " << e.what());
  }
  MOPS_CHECK(header.is_object(),
             path_ << ": header is a JSON " << header.type_name() << ", expected an object");
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__")
      parse_metadata(value);
    else
      entries_.emplace(name, parse_entry(name, value));
  }
}

void SafetensorsReader::parse_metadata(const nlohmann::json& value) {
  MOPS_CHECK(value.is_object(), path_ << ": __metadata__ is a JSON " << value.type_name()
                                      << ", expected an object of strings");
  for (const auto& [key, item] : value.items()) {
    MOPS_CHECK(item.is_string(), path_ << ": __metadata__ value for '" << key << "' is a JSON "
                                       << item.type_name() << ", expected a string");
    metadata_[key] = item.get<std::string>();
  }
}

SafetensorsReader::Entry SafetensorsReader::parse_entry(const std::string& name,
                                                        const nlohmann::json& value) const {
  const std::string where = path_ + ": tensor '" + name + "'";
  MOPS_CHECK(value.is_object(), where << " is a JSON " << value.type_name()
                                      << ", expected an object with dtype, shape and data_offsets");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    MOPS_CHECK(value.contains(key), where << " has no '" << key << "' entry");

  const nlohmann::json& dtype = value.at("dtype");
  MOPS_CHECK(dtype.is_string(),
             where << " has dtype of JSON type " << dtype.type_name() << ", expected a string");
  const DtypeInfo* info = find_dtype(dtype.get<std::string>());
  MOPS_CHECK(info, where << " has dtype '" << dtype.get<std::string>()
                         << "', which is not supported (supported: " << supported_dtypes() << ")");

  Entry parsed;
  parsed.type = info->type;
  parsed.shape = parse_shape(where, value.at("shape"));
  const auto [begin, end] = parse_offsets(where, value.at("data_offsets"));
  MOPS_CHECK(end <= data_size(), path_ << ": truncated: tensor '" << name << "' needs bytes ["
                                       << begin << ", " << end
                                       << ") of the data section but it has only " << data_size());
  const std::uint64_t expected = byte_count(where, parsed.shape, parsed.type);
  MOPS_CHECK(end - begin == expected,
             where << ": header/size mismatch: shape " << shape_string(parsed.shape) << " of "
                   << info->name << " needs " << expected << " bytes but data_offsets [" << begin
                   << ", " << end << ") hold " << end - begin);
  parsed.offset = data_start_ + begin;
  parsed.bytes = end - begin;
  return parsed;
}

std::size_t SafetensorsReader::data_size() const { return mapping_->size - data_start_; }

const std::string& SafetensorsReader::path() const { return path_; }

const std::map<std::string, std::string>& SafetensorsReader::metadata() const { return metadata_; }

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> result;
  for (const auto& [name, unused] : entries_) result.push_back(name);
  return result;
}

bool SafetensorsReader::contains(const std::string& name) const { return entries_.count(name) > 0; }

std::vector<int64_t> SafetensorsReader::shape(const std::string& name) const {
  return entry(name).shape;
}

std::string SafetensorsReader::dtype(const std::string& name) const {
  return find_dtype(entry(name).type)->name;
}

torch::Tensor SafetensorsReader::tensor(const std::string& name) const {
  const Entry& e = entry(name);
  char* data = mapping_->data + e.offset;
  if (reinterpret_cast<std::uintptr_t>(data) % c10::elementSize(e.type) == 0) {
    return torch::from_blob(
        data, e.shape, [mapping = mapping_](void*) {}, torch::TensorOptions().dtype(e.type));
  }
  // Misaligned for its element type: copy the bytes into a fresh (aligned) tensor.
  torch::Tensor copy = torch::empty(e.shape, torch::TensorOptions().dtype(e.type));
  if (e.bytes > 0) std::memcpy(copy.data_ptr(), data, e.bytes);
  return copy;
}

torch::Tensor SafetensorsReader::float_tensor(const std::string& name) const {
  const Entry& e = entry(name);
  MOPS_CHECK(c10::isFloatingType(e.type),
             path_ << ": tensor '" << name << "' has dtype '" << find_dtype(e.type)->name
                   << "', which cannot be read as float32 (allowed: F32, F16, BF16, F64)");
  return tensor(name).to(torch::kFloat);
}

const SafetensorsReader::Entry& SafetensorsReader::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it != entries_.end()) return it->second;
  std::ostringstream available;
  std::size_t listed = 0;
  for (const auto& [known, unused] : entries_) {
    if (listed++ == 5) break;
    available << (listed > 1 ? ", " : "") << "'" << known << "'";
  }
  MOPS_FAIL(path_ << ": no tensor named '" << name << "' ("
                  << (entries_.empty() ? "the file has no tensors"
                                       : std::to_string(entries_.size()) + " tensors, e.g. " +
                                             available.str())
                  << ")");
}

namespace {

// The JSON header for `tensors` (already CPU and contiguous), padded with spaces to a
// multiple of 8 bytes so that the data section starts 8-byte aligned.
std::string header_json(const std::string& path,
                        const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const std::uint64_t bytes = tensor.numel() * tensor.element_size();
    header[name] = {{"dtype", find_dtype(tensor.scalar_type())->name},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", nlohmann::ordered_json::array({offset, offset + bytes})}};
    offset += bytes;
  }
  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& e) {
    MOPS_FAIL(path << ": cannot encode the safetensors header: " << e.what());
  }
  json.append((8 - json.size() % 8) % 8, ' ');
  return json;
}

// Checks names and dtypes; returns the tensors on the CPU and contiguous.
std::vector<std::pair<std::string, torch::Tensor>> prepare_tensors(
    const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::set<std::string> seen;
  std::vector<std::pair<std::string, torch::Tensor>> prepared;
  for (const auto& [name, tensor] : tensors) {
    MOPS_CHECK(name != "__metadata__",
               path << ": cannot write a tensor named '__metadata__' (the name is reserved)");
    MOPS_CHECK(seen.insert(name).second, path << ": tensor '" << name << "' is given twice");
    MOPS_CHECK(tensor.defined(), path << ": tensor '" << name << "' is undefined");
    MOPS_CHECK(find_dtype(tensor.scalar_type()),
               path << ": tensor '" << name << "' has dtype " << tensor.scalar_type()
                    << ", which is not supported (supported: " << supported_dtypes() << ")");
    prepared.emplace_back(name, tensor.detach().to(torch::kCPU).contiguous());
  }
  return prepared;
}

void write_all(int fd, const void* data, std::size_t size, const std::string& path) {
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd, bytes, size);
    if (written < 0 && errno == EINTR) continue;
    check_syscall(written > 0, path, "write");
    bytes += written;
    size -= static_cast<std::size_t>(written);
  }
}

void write_file(const std::string& path, const std::string& header,
                const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  FileDescriptor fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  check_syscall(fd.get() >= 0, path, "create");
  const std::uint64_t header_size = header.size();
  write_all(fd.get(), &header_size, kLengthBytes, path);
  write_all(fd.get(), header.data(), header.size(), path);
  for (const auto& [name, tensor] : tensors)
    write_all(fd.get(), tensor.data_ptr(), tensor.numel() * tensor.element_size(), path);
  check_syscall(::fsync(fd.get()) == 0, path, "flush to disk");
  check_syscall(::close(fd.release()) == 0, path, "close");
}

}  // namespace

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const auto prepared = prepare_tensors(path, tensors);
  const std::string header = header_json(path, prepared, metadata);
  const std::string temporary = path + ".tmp";
  try {
    write_file(temporary, header, prepared);
  } catch (const Error&) {
    std::remove(temporary.c_str());
    throw;
  }
  check_syscall(std::rename(temporary.c_str(), path.c_str()) == 0, path,
                "rename the .tmp file to it");
}

}  // namespace mops
