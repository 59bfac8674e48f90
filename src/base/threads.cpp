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
using GetThreads = int (*)();
using GetConfig = char* (*)();

}  // namespace

int ranks_on_this_node() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"}) {
    const char* value = std::getenv(name);
    if (value && std::atoi(value) > 0) return std::atoi(value);
  }
  return 1;
}

int local_rank_on_node() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID",
                           "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    const char* value = std::getenv(name);
    if (value && std::atoi(value) >= 0) return std::atoi(value);
  }
  return 0;
}

namespace {

// The node's cores shared by its ranks, or fewer when OMP_NUM_THREADS says so (batch systems
// and ctest set it).
int default_cores(int ranks_on_node) {
  const int share = std::max(1, int(std::max(1u, std::thread::hardware_concurrency())) / ranks_on_node);
  const char* omp = std::getenv("OMP_NUM_THREADS");
  return omp && std::atoi(omp) > 0 ? std::min(share, std::atoi(omp)) : share;
}

}  // namespace

ThreadSplit parse_thread_split(const std::string& text) {
  if (text == "blas") return ThreadSplit::kBlas;
  if (text == "torch") return ThreadSplit::kTorch;
  MOPS_FAIL("--thread-split '" << text << "' is not one of blas (the cores to OpenBLAS's matrix products), "
                                  "torch (the cores to LibTorch's intra-op pool)");
}

ThreadSettings apply_thread_settings(int requested, ThreadSplit split) {
  MOPS_CHECK(requested >= 0, "--threads = " << requested << " must be 0 (the cores shared by this node's ranks) or positive");
  ThreadSettings settings;
  settings.ranks_on_node = ranks_on_this_node();
  settings.cores = requested > 0 ? requested : default_cores(settings.ranks_on_node);
  auto set_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get_config = reinterpret_cast<GetConfig>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  // Without OpenBLAS the cores can only go to LibTorch.
  settings.split = set_threads ? split : ThreadSplit::kTorch;
  const bool to_blas = settings.split == ThreadSplit::kBlas;
  torch::set_num_threads(to_blas ? 1 : settings.cores);
  if (set_threads) {
    set_threads(to_blas ? settings.cores : 1);
    // What the libraries took (an OpenMP build of OpenBLAS would also set LibTorch's pool).
    auto get_threads = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    settings.openblas_threads = get_threads ? get_threads() : (to_blas ? settings.cores : 1);
    settings.blas = get_config ? get_config() : "OpenBLAS";
  } else {
    settings.openblas_threads = -1;
    settings.blas = at::globalContext().hasMKL() ? "MKL inside LibTorch, on LibTorch's threads" : "LibTorch's own";
  }
  settings.torch_threads = torch::get_num_threads();
  return settings;
}

std::string describe(const ThreadSettings& settings) {
  std::ostringstream out;
  out << "threads: " << settings.cores << " core" << (settings.cores == 1 ? "" : "s") << " to "
      << (settings.split == ThreadSplit::kBlas ? "OpenBLAS" : "LibTorch") << ": LibTorch intra-op "
      << settings.torch_threads << ", OpenBLAS ";
  if (settings.openblas_threads > 0) out << settings.openblas_threads;
  else out << "n/a";
  out << " (BLAS: " << settings.blas << ")";
  if (settings.ranks_on_node > 1) out << "; " << settings.ranks_on_node << " ranks on this node";
  return out.str();
}

}  // namespace mops
