// Thread settings, owned in one place. A process gets N cores (--threads; 0 = the node's cores
// divided among its MPI ranks, at most OMP_NUM_THREADS). The torch wheel's LibTorch does its
// matrix products with MKL inside it, on LibTorch's own intra-op (OpenMP) pool, so the N cores are
// LibTorch's. Where LibTorch's BLAS is OpenBLAS (Debian's LibTorch, before the wheel), they go
// either to OpenBLAS with LibTorch's pool at one thread ("blas") or to LibTorch with OpenBLAS at one
// thread ("torch"), never both: OpenMP and OpenBLAS threads that spin at once oversubscribe the
// cores (measured 2.6x slower on a small training step; BENCHMARKS.md).
#pragma once
#include <string>

namespace mops {

enum class ThreadSplit { kBlas, kTorch };

struct ThreadSettings {
  int cores = 0;             // the cores this process uses
  ThreadSplit split = ThreadSplit::kBlas;
  int torch_threads = 0;     // LibTorch intra-op (OpenMP) threads, as LibTorch reports them
  int openblas_threads = 0;  // as OpenBLAS reports them; -1 when OpenBLAS is not the BLAS in use
  int ranks_on_node = 1;     // MPI ranks the launcher started on this node
  std::string blas;          // OpenBLAS's own configuration string, or what was found instead
};

// MPI ranks the launcher (Open MPI, MPICH/Hydra, SLURM's srun) started on this node; 1 otherwise.
int ranks_on_this_node();
// This process's rank among them (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, SLURM_LOCALID);
// else its global rank from the launcher (a node of its own); 0 outside a launcher. A rank's GPU
// is this mod the visible GPUs.
int local_rank_on_node();
// "blas" or "torch"; anything else is an error naming --thread-split.
ThreadSplit parse_thread_split(const std::string& text);
// requested = 0 means the node's cores divided among its ranks (at least 1), and no more than
// OMP_NUM_THREADS when it is set.
ThreadSettings apply_thread_settings(int requested, ThreadSplit split = ThreadSplit::kBlas);
std::string describe(const ThreadSettings& settings);

}  // namespace mops
