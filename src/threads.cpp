#include "threads.h"

#include <dlfcn.h>
#include <torch/torch.h>

#include <cstdlib>
#include <sstream>
#include <thread>

#include "errors.h"

namespace mops {
namespace {

// OpenBLAS is reached through libblas.so.3 at run time; look its controls up dynamically so
// that the build does not depend on which BLAS the alternatives system picked.
using SetThreads = void (*)(int);
using GetConfig = char* (*)();

// Ranks the MPI launcher started on this node (Open MPI, MPICH/Hydra, SLURM's srun); 1 otherwise.
int ranks_on_this_node() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"}) {
    const char* value = std::getenv(name);
    if (value && std::atoi(value) > 0) return std::atoi(value);
  }
  return 1;
}

}  // namespace

ThreadSettings apply_thread_settings(int requested) {
  MOPS_CHECK(requested >= 0, "--threads = " << requested << " must be 0 (the cores shared by this node's ranks) or positive");
  ThreadSettings settings;
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  settings.ranks_on_node = ranks_on_this_node();
  settings.torch_threads = requested > 0 ? requested : std::max(1, cores / settings.ranks_on_node);
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
  if (settings.ranks_on_node > 1) out << "; " << settings.ranks_on_node << " ranks on this node";
  return out.str();
}

}  // namespace mops
