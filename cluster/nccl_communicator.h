// NcclCommunicator: ncclAllReduce / ncclBroadcast between one GPU per rank. Built only when
// CMake finds the CUDA runtime and NCCL (MOPS_HAVE_NCCL); needs a GPU on every rank at run time.
// MPI starts the job: rank 0's ncclUniqueId reaches the others through MPI_Bcast, and barrier
// is MPI's. Values in this rank's GPU memory are reduced in place, after the device has finished
// the work that wrote them; values in host memory are copied to a device buffer (kept between
// calls, grown when a call needs more), reduced, and copied back. Every call runs on this
// communicator's stream and waits for it.
// Device of a rank: local_rank_on_node() (threads.h) modulo the visible devices, the same GPU
// --device cuda computes on. NCCL allows one rank per GPU: ranks that would share one are an
// error that says so (--comm mpi lets ranks share a GPU).
#pragma once
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "communicator.h"
#include "mpi_communicator.h"

namespace mops {

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator();
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return mpi_.rank(); }
  int size() const override { return mpi_.size(); }
  std::string name() const override { return "nccl"; }
  bool takes_device_memory() const override { return true; }
  int device() const { return device_; }
  void barrier() override;
  [[noreturn]] void abort(int exit_code) override;

 protected:
  void do_allreduce_sum(double* values, size_t count) override;
  void do_broadcast(void* data, size_t bytes, int root) override;

 private:
  void reserve_device_bytes(size_t bytes);
  bool on_this_device(const void* pointer) const;  // GPU memory of this rank's device (else: host)
  void check_one_rank_per_gpu();

  // Declared before mpi_, so that a machine without a GPU fails before MPI is started.
  int device_count_;
  MpiCommunicator mpi_;
  int device_ = -1;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  void* device_buffer_ = nullptr;
  size_t device_capacity_ = 0;  // bytes
};

}  // namespace mops
