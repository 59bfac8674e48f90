// Thread settings, owned in one place: LibTorch's intra-op threads do the work and OpenBLAS is
// held at one thread, because both spawning threads oversubscribes the cores (measured 2.6x
// slower on a small training step). Under an MPI launcher the cores are shared out among the
// ranks of the node (--threads 0).
#pragma once
#include <string>

namespace mops {

struct ThreadSettings {
  int torch_threads = 0;
  int openblas_threads = 0;  // -1 when OpenBLAS is not the BLAS in use
  int ranks_on_node = 1;     // MPI ranks the launcher started on this node
  std::string blas;          // OpenBLAS's own configuration string, or what was found instead
};

// requested = 0 means the node's cores divided among its ranks (at least 1).
ThreadSettings apply_thread_settings(int requested);
std::string describe(const ThreadSettings& settings);

}  // namespace mops
