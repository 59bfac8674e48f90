// Thread settings, owned in one place: LibTorch's intra-op threads do the work and OpenBLAS is
// held at one thread, because both spawning threads oversubscribes the cores (measured 2.6x
// slower on a small training step).
#pragma once
#include <string>

namespace mops {

struct ThreadSettings {
  int torch_threads = 0;
  int openblas_threads = 0;  // -1 when OpenBLAS is not the BLAS in use
  std::string blas;          // OpenBLAS's own configuration string, or what was found instead
};

// requested = 0 means one thread per core.
ThreadSettings apply_thread_settings(int requested);
std::string describe(const ThreadSettings& settings);

}  // namespace mops
