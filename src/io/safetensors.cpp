// Safetensors reader (mmap + src/io/safetensors_layout.h) and atomic writer.
#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "atomic_file.h"
#include "errors.h"
#include "safetensors_layout.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors stores little-endian data, which this code copies as is");

namespace mops {
namespace {

constexpr std::size_t kLengthBytes = 8;  // the uint64 header length

// The torch type of each dtype safetensors_layout.cpp accepts.
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

 private:
  int fd_;
};

}  // namespace

// The whole file, mapped private and writable: writes go to private copies of the pages.
struct SafetensorsReader::Mapping {
  char* data = nullptr;  // null for an empty file, which cannot be mapped
  std::size_t size = 0;

  Mapping(const std::string& path, int fd, std::size_t file_size) : size(file_size) {
    if (size == 0) return;
    void* mapped = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    check_syscall(mapped != MAP_FAILED, path, "memory-map the file");
    data = static_cast<char*>(mapped);
  }
  ~Mapping() {
    if (data) ::munmap(data, size);
  }
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
    mapping_ = std::make_shared<Mapping>(path, fd.get(), static_cast<std::size_t>(info.st_size));
  }
  SafetensorsLayout layout = parse_safetensors_layout(path_, mapping_->data, mapping_->size);
  for (auto& [name, e] : layout.entries) {
    const DtypeInfo* info = find_dtype(e.dtype);
    MOPS_CHECK(info, path_ << ": tensor '" << name << "': dtype '" << e.dtype << "' has no torch type");
    entries_[name] = {info->type, std::move(e.shape), layout.data_start + e.begin, e.end - e.begin};
  }
  metadata_ = std::move(layout.metadata);
}

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
                    << ", which is not supported (supported: " << safetensors_dtype_list() << ")");
    prepared.emplace_back(name, tensor.detach().to(torch::kCPU).contiguous());
  }
  return prepared;
}

}  // namespace

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const auto prepared = prepare_tensors(path, tensors);
  const std::string header = header_json(path, prepared, metadata);
  AtomicFile file(path);  // a temporary file of this writer's own, renamed over PATH at the end
  const std::uint64_t header_size = header.size();
  file.write(&header_size, kLengthBytes);
  file.write(header.data(), header.size());
  for (const auto& [name, tensor] : prepared) file.write(tensor.data_ptr(), tensor.numel() * tensor.element_size());
  file.commit();
}

}  // namespace mops
