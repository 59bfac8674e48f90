#include "communicator.h"

#include <chrono>
#include <cstdlib>

#include "errors.h"
#include "local_communicator.h"
#include "mpi_communicator.h"
#if MOPS_HAVE_NCCL
#include "nccl_communicator.h"
#endif

namespace mops {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// mpirun (Open MPI), srun with PMI-2 or PMIx, and MPICH's hydra all leave one of these in the
// environment of every rank they start; a plain shell does not.
bool started_by_mpi_launcher() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

}  // namespace

void Communicator::allreduce_sum(double* values, size_t count) {
  MOPS_CHECK(values != nullptr || count == 0, "allreduce_sum of " << count << " values from a null pointer");
  const auto start = std::chrono::steady_clock::now();
  do_allreduce_sum(values, count);
  seconds_ += seconds_since(start);
  bytes_reduced_ += count * sizeof(double);
}

void Communicator::broadcast(void* data, size_t bytes, int root) {
  MOPS_CHECK(root >= 0 && root < size(),
             "broadcast from root " << root << ", but the " << name() << " communicator has ranks 0.."
                                    << size() - 1);
  MOPS_CHECK(data != nullptr || bytes == 0, "broadcast of " << bytes << " bytes from a null pointer");
  const auto start = std::chrono::steady_clock::now();
  do_broadcast(data, bytes, root);
  seconds_ += seconds_since(start);
  bytes_broadcast_ += bytes;
}

std::unique_ptr<Communicator> make_communicator(const std::string& kind) {
  if (kind == "local") return std::make_unique<LocalCommunicator>();
  if (kind == "mpi") return std::make_unique<MpiCommunicator>();
  if (kind == "auto") return make_communicator(started_by_mpi_launcher() ? "mpi" : "local");
  if (kind == "nccl") {
#if MOPS_HAVE_NCCL
    return std::make_unique<NcclCommunicator>();
#else
    MOPS_FAIL("--comm nccl: this build has no NCCL communicator (configured without CUDA runtime and NCCL, "
              "or with MOPS_WITH_NCCL=OFF: see the 'NCCL communicator' line of CMake's output). Use --comm mpi.");
#endif
  }
  MOPS_FAIL("unknown communicator '" << kind << "'; choose one of local|mpi|nccl|auto");
}

bool nccl_available_in_build() { return MOPS_HAVE_NCCL; }

}  // namespace mops
