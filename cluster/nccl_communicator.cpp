#include "nccl_communicator.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "errors.h"
#include "threads.h"

// MOPS_CUDA_CHECK / MOPS_NCCL_CHECK(call): throw mops::Error naming the call and the
// library's own message; throw_error adds file:line and the rank.
#define MOPS_CUDA_CHECK(call)                                                         \
  do {                                                                                \
    const cudaError_t mops_cuda_code_ = (call);                                       \
    MOPS_CHECK(mops_cuda_code_ == cudaSuccess, #call " failed: " << cudaGetErrorString(mops_cuda_code_)); \
  } while (0)

#define MOPS_NCCL_CHECK(call)                                                         \
  do {                                                                                \
    const ncclResult_t mops_nccl_code_ = (call);                                      \
    MOPS_CHECK(mops_nccl_code_ == ncclSuccess, #call " failed: " << nccl_message(mops_nccl_code_)); \
  } while (0)

namespace mops {
namespace {

// ncclGetErrorString names the class of error; ncclGetLastError often says what happened
// (NCCL warns that it may also stem from an earlier asynchronous operation).
std::string nccl_message(ncclResult_t code) {
  std::string message = ncclGetErrorString(code);
  const char* detail = ncclGetLastError(nullptr);
  if (detail != nullptr && *detail != '\0') message += std::string(" (last NCCL error: ") + detail + ")";
  return message;
}

// Without a usable GPU (no device, no driver, a driver older than the runtime) the CUDA
// runtime reports an error here rather than a count of 0; both mean: no GPU for this rank.
int visible_gpu_count() {
  int count = 0;
  const cudaError_t code = cudaGetDeviceCount(&count);
  MOPS_CHECK(code == cudaSuccess && count > 0,
             "--comm nccl needs a CUDA GPU on every rank; cudaGetDeviceCount: "
                 << (code == cudaSuccess ? std::to_string(count) + " devices" : cudaGetErrorString(code))
                 << ". Use --comm mpi.");
  return count;
}

}  // namespace

NcclCommunicator::NcclCommunicator() : device_count_(visible_gpu_count()) {
  device_ = local_rank_on_node() % device_count_;  // the GPU --device cuda computes on
  MOPS_CUDA_CHECK(cudaSetDevice(device_));
  check_one_rank_per_gpu();
  MOPS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  ncclUniqueId id{};
  if (mpi_.rank() == 0) MOPS_NCCL_CHECK(ncclGetUniqueId(&id));
  mpi_.broadcast(&id, sizeof id, 0);
  MOPS_NCCL_CHECK(ncclCommInitRank(&comm_, mpi_.size(), id, mpi_.rank()));
}

// Return codes are ignored here: a destructor must not throw. ncclCommFinalize waits for
// every rank; while an exception unwinds this rank the others may never come (see
// ~MpiCommunicator), so then the communicator is aborted, which is local.
NcclCommunicator::~NcclCommunicator() {
  if (comm_ != nullptr && std::uncaught_exceptions() > 0) {
    ncclCommAbort(comm_);
  } else if (comm_ != nullptr) {
    ncclCommFinalize(comm_);
    ncclCommDestroy(comm_);
  }
  cudaFree(device_buffer_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

// Collectives are waited for before they return, so an MPI barrier orders them too.
void NcclCommunicator::barrier() { mpi_.barrier(); }

void NcclCommunicator::abort(int exit_code) {
  if (comm_ != nullptr) ncclCommAbort(comm_);
  mpi_.abort(exit_code);
}

// Every rank's (host, GPU) through one MPI sum: slot r holds rank r's host hash and device.
void NcclCommunicator::check_one_rank_per_gpu() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const uint32_t hash = uint32_t(std::hash<std::string>{}(host));  // 32 bits: exact in a double
  std::vector<double> placement(2 * size_t(size()), 0.0);
  placement[2 * rank()] = hash;
  placement[2 * rank() + 1] = device_;
  mpi_.allreduce_sum(placement.data(), placement.size());
  for (int r = 0; r < size(); ++r) {
    if (r == rank() || placement[2 * r] != hash || placement[2 * r + 1] != device_) continue;
    MOPS_FAIL("--comm nccl: ranks " << std::min(r, rank()) << " and " << std::max(r, rank()) << " would share GPU "
              << device_ << " of " << host << ", and NCCL allows one rank per GPU. Start at most " << device_count_
              << " ranks per node, or use --comm mpi (ranks may share a GPU with it).");
  }
}

bool NcclCommunicator::on_this_device(const void* pointer) const {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, pointer) != cudaSuccess) {
    cudaGetLastError();  // not memory CUDA knows: host memory
    return false;
  }
  if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged) return false;
  MOPS_CHECK(attributes.device == device_, "--comm nccl: values in the memory of GPU " << attributes.device
                                               << ", but this rank reduces on GPU " << device_);
  return true;
}

void NcclCommunicator::reserve_device_bytes(size_t bytes) {
  if (bytes <= device_capacity_) return;
  MOPS_CUDA_CHECK(cudaFree(device_buffer_));
  device_buffer_ = nullptr;
  device_capacity_ = 0;
  MOPS_CUDA_CHECK(cudaMalloc(&device_buffer_, bytes));
  device_capacity_ = bytes;
}

void NcclCommunicator::do_allreduce_sum(double* values, size_t count) {
  if (count == 0) return;
  if (on_this_device(values)) {
    MOPS_CUDA_CHECK(cudaDeviceSynchronize());  // the kernels that wrote `values` ran on other streams
    MOPS_NCCL_CHECK(ncclAllReduce(values, values, count, ncclDouble, ncclSum, comm_, stream_));
    MOPS_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return;
  }
  const size_t bytes = count * sizeof(double);
  reserve_device_bytes(bytes);
  MOPS_CUDA_CHECK(cudaMemcpyAsync(device_buffer_, values, bytes, cudaMemcpyHostToDevice, stream_));
  MOPS_NCCL_CHECK(ncclAllReduce(device_buffer_, device_buffer_, count, ncclDouble, ncclSum, comm_, stream_));
  MOPS_CUDA_CHECK(cudaMemcpyAsync(values, device_buffer_, bytes, cudaMemcpyDeviceToHost, stream_));
  MOPS_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void NcclCommunicator::do_broadcast(void* data, size_t bytes, int root) {
  if (bytes == 0) return;
  if (on_this_device(data)) {
    MOPS_CUDA_CHECK(cudaDeviceSynchronize());
    MOPS_NCCL_CHECK(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_));
    MOPS_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return;
  }
  reserve_device_bytes(bytes);
  const bool is_root = rank() == root;
  if (is_root) MOPS_CUDA_CHECK(cudaMemcpyAsync(device_buffer_, data, bytes, cudaMemcpyHostToDevice, stream_));
  MOPS_NCCL_CHECK(ncclBroadcast(device_buffer_, device_buffer_, bytes, ncclUint8, root, comm_, stream_));
  if (!is_root) MOPS_CUDA_CHECK(cudaMemcpyAsync(data, device_buffer_, bytes, cudaMemcpyDeviceToHost, stream_));
  MOPS_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace mops
