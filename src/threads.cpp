#include "threads.h"

#include <dlfcn.h>
#include <torch/torch.h>

#include <sstream>
#include <thread>

#include "errors.h"

namespace mops {
namespace {

// OpenBLAS is reached through libblas.so.3 at run time; look its controls up dynamically so
// that the build does not depend on which BLAS the alternatives system picked.
using SetThreads = void (*)(int);
using GetConfig = char* (*)();

}  // namespace

ThreadSettings apply_thread_settings(int requested) {
  MOPS_CHECK(requested >= 0, "--threads = " << requested << " must be 0 (one per core) or positive");
  ThreadSettings settings;
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  settings.torch_threads = requested > 0 ? requested : cores;
  torch::set_num_threads(settings.torch_threads);
  auto set_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get_config = reinterpret_cast<GetConfig>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  if (set_threads) {
    set_threads(1);
    settings.openblas_threads = 1;
    settings.blas = get_config ? get_config() : "OpenBLAS";
  } else {
    settings.openblas_threads = -1;
    settings.blas = "not OpenBLAS (install libopenblas0-pthread: the reference BLAS is ~20x slower)";
  }
  return settings;
}

std::string describe(const ThreadSettings& settings) {
  std::ostringstream out;
  out << "threads: LibTorch intra-op " << settings.torch_threads << ", OpenBLAS ";
  if (settings.openblas_threads > 0) out << settings.openblas_threads;
  else out << "n/a";
  out << " (BLAS: " << settings.blas << ")";
  return out.str();
}

}  // namespace mops
