// Communicator: the only way ranks talk to each other. Three implementations:
//   local  one process, no MPI (tests, single-rank runs)
//   mpi    MPI_Allreduce / MPI_Bcast / MPI_Barrier on MPI_COMM_WORLD
//   nccl   ncclAllReduce / ncclBroadcast on device buffers, bootstrapped through MPI
//          (built when CUDA and NCCL are found; needs a GPU at run time)
// Sums are in float64 so that FedAvg does not depend on how many ranks add up the parts.
// Every call counts the payload bytes it moves (bytes_reduced, bytes_broadcast), so tests
// can check that only what should cross ranks does.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace mops {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "local" | "mpi" | "nccl"
  // Whether allreduce_sum and broadcast also take pointers to GPU memory, which they then
  // reduce in place there, with no copy through the host (nccl). Host pointers always work.
  virtual bool takes_device_memory() const { return false; }

  // Element-wise sum over ranks, in place; every rank ends with the sum.
  void allreduce_sum(double* values, size_t count);
  // Copies `bytes` bytes from rank `root` into `data` on every rank.
  void broadcast(void* data, size_t bytes, int root);
  virtual void barrier() = 0;
  // Stops every rank of the job (MPI_Abort); a single process just exits.
  [[noreturn]] virtual void abort(int exit_code) = 0;

  uint64_t bytes_reduced() const { return bytes_reduced_; }      // payload of allreduce_sum calls
  uint64_t bytes_broadcast() const { return bytes_broadcast_; }  // payload of broadcast calls
  double seconds_communicating() const { return seconds_; }      // wall time inside those calls

 protected:
  virtual void do_allreduce_sum(double* values, size_t count) = 0;
  virtual void do_broadcast(void* data, size_t bytes, int root) = 0;

 private:
  uint64_t bytes_reduced_ = 0, bytes_broadcast_ = 0;
  double seconds_ = 0;
};

// kind: "local" | "mpi" | "nccl" | "auto" (mpi when started by mpirun/srun, else local).
// Unknown kinds, nccl without a GPU or without NCCL in the build: mops::Error saying which
// kinds exist and what to use instead.
std::unique_ptr<Communicator> make_communicator(const std::string& kind);

// Whether this build has the NCCL communicator.
bool nccl_available_in_build();

}  // namespace mops
