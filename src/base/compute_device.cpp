#include "compute_device.h"

#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <sstream>

#if MOPS_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "errors.h"
#include "threads.h"

namespace mops {
namespace {

// The visible GPUs, or why there is none (the CUDA runtime's own words where it has them).
int visible_gpus(std::string& why_none) {
#if MOPS_HAVE_CUDA
  int count = 0;
  const cudaError_t code = cudaGetDeviceCount(&count);
  if (code != cudaSuccess) {
    why_none = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(code);
    cudaGetLastError();  // clear it, so that it does not surface in a later call
    return 0;
  }
  if (count == 0) why_none = "cudaGetDeviceCount: 0 devices";
  if (count > 0 && !torch::cuda::is_available()) {
    why_none = "LibTorch sees no CUDA device";
    return 0;
  }
  return count;
#else
  why_none = "this build has no CUDA (CMake found no CUDA toolkit)";
  return 0;
#endif
}

double gib(int64_t bytes) { return double(bytes) / (1024.0 * 1024.0 * 1024.0); }

void use_gpu(int index) {
#if MOPS_HAVE_CUDA
  const cudaError_t code = cudaSetDevice(index);
  MOPS_CHECK(code == cudaSuccess, "cudaSetDevice(" << index << "): " << cudaGetErrorString(code));
#endif
  // cuBLAS is deterministic only with a fixed workspace; it reads this before its first use.
  setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/false);
}

}  // namespace

ComputeDevice resolve_compute_device(const std::string& device, const std::string& dtype) {
  MOPS_CHECK(device == "cpu" || device == "cuda" || device == "auto",
             "--device '" << device << "' is not one of cpu, cuda, auto");
  ComputeDevice compute;
  if (device != "cpu") {
    std::string why_none;
    const int gpus = visible_gpus(why_none);
    MOPS_CHECK(gpus > 0 || device == "auto",
               "--device cuda: no CUDA GPU is visible to this process (" << why_none
                   << "). Run on a GPU node, or use --device cpu (or auto).");
    if (gpus > 0) {
      compute.device = torch::Device(torch::kCUDA, int8_t(local_rank_on_node() % gpus));
      use_gpu(compute.device.index());
    }
  }
  if (dtype == "auto") {
    compute.dtype = compute.device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  } else if (dtype == "float32") {
    compute.dtype = torch::kFloat32;
  } else if (dtype == "bfloat16") {
    compute.dtype = torch::kBFloat16;
  } else {
    MOPS_FAIL("--dtype '" << dtype << "' is not one of auto, float32, bfloat16");
  }
  return compute;
}

int64_t free_memory(const torch::Device& device) {
  if (device.is_cuda()) {
#if MOPS_HAVE_CUDA
    size_t free = 0, total = 0;
    const cudaError_t code = cudaMemGetInfo(&free, &total);
    MOPS_CHECK(code == cudaSuccess, "cudaMemGetInfo: " << cudaGetErrorString(code));
    return int64_t(free);
#endif
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    case torch::kFloat64: return "float64";
    default: return c10::toString(dtype);
  }
}

std::string describe(const ComputeDevice& compute) {
  std::ostringstream out;
  out << compute.device.str();
  if (compute.device.is_cuda()) {
#if MOPS_HAVE_CUDA
    cudaDeviceProp properties{};
    if (cudaGetDeviceProperties(&properties, compute.device.index()) == cudaSuccess) {
      out << " (" << properties.name << ", " << std::fixed << std::setprecision(1) << gib(int64_t(properties.totalGlobalMem))
          << " GiB, " << gib(free_memory(compute.device)) << " GiB free)";
    }
#endif
  }
  out << ", backbone " << dtype_name(compute.dtype) << ", LibTorch " << TORCH_VERSION;
#if MOPS_HAVE_CUDA
  int runtime = 0;
  if (cudaRuntimeGetVersion(&runtime) == cudaSuccess) out << " (CUDA " << runtime / 1000 << "." << runtime % 1000 / 10 << ")";
#endif
  return out.str();
}

}  // namespace mops
