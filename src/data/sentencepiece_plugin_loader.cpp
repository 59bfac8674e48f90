#include "sentencepiece_plugin_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "build_paths.h"
#include "errors.h"

namespace mops {
namespace {

constexpr const char* kPluginName = "libmops_sentencepiece.so";

// DEEPBIND: SentencePiece must bind to its own protobuf, not LibTorch's.
void* open_deep_bound(const char* file) {
  constexpr int kFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's dlopen refuses RTLD_DEEPBIND (google/sanitizers#611): a deep-bound
  // library would find libc's malloc and free before ASan's. The plug-in of a sanitized build
  // (scripts/sanitize.sh) lists libasan.so first among the libraries it needs, so in its own
  // lookup scope ASan's allocator still comes first: such a build calls libc's dlopen itself.
  using Dlopen = void* (*)(const char*, int);
  void* const libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  const auto libc_dlopen = libc ? reinterpret_cast<Dlopen>(dlsym(libc, "dlopen")) : nullptr;
  MOPS_CHECK(libc_dlopen, "cannot find libc's dlopen for the SentencePiece plug-in: " << dlerror());
  return libc_dlopen(file, kFlags);
#else
  return dlopen(file, kFlags);
#endif
}

std::vector<std::filesystem::path> plugin_candidates() {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("MOPS_PLUGIN_DIR")) dirs.emplace_back(env);
  std::error_code ignored;
  const auto exe_dir = fs::read_symlink("/proc/self/exe", ignored).parent_path();
  if (!exe_dir.empty()) {
    dirs.push_back(exe_dir);
    dirs.push_back(exe_dir / ".." / "lib" / "mops");
  }
  dirs.emplace_back(MOPS_PLUGIN_BUILD_DIR);
  std::vector<fs::path> files;
  for (const auto& dir : dirs) files.push_back(dir / kPluginName);
  return files;
}

const SentencePieceBackend* open_backend() {
  std::string tried;
  for (const auto& file : plugin_candidates()) {
    if (!std::filesystem::exists(file)) {
      tried += " " + file.string();
      continue;
    }
    void* handle = open_deep_bound(file.c_str());
    MOPS_CHECK(handle, "cannot open the SentencePiece plug-in " << file.string() << ": " << dlerror());
    using Entry = const SentencePieceBackend* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, "mops_sentencepiece_backend"));
    MOPS_CHECK(entry, file.string() << " lacks mops_sentencepiece_backend: a stale build? Rebuild mops");
    return entry();
  }
  MOPS_FAIL("the SentencePiece plug-in " << kPluginName << " was not found (looked at" << tried
                                          << "); set MOPS_PLUGIN_DIR to the directory that holds it");
}

}  // namespace

const SentencePieceBackend& sentencepiece_backend() {
  static std::once_flag once;
  static const SentencePieceBackend* backend = nullptr;
  std::call_once(once, [] { backend = open_backend(); });
  return *backend;
}

}  // namespace mops
