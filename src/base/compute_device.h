// Where a command computes (--device cpu|cuda|auto) and in which dtype the frozen backbone
// runs (--dtype auto|float32|bfloat16). Prompts, gate, optimizer and losses stay float32.
//
// A CUDA rank takes GPU (its rank on its node mod the visible GPUs), so several ranks may share
// one. On CUDA, deterministic algorithms are switched on (cuBLAS workspace ":4096:8"): the same
// ranks and seed give the same result.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <string>

namespace mops {

struct ComputeDevice {
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat32;  // the frozen backbone's weights and activations
};

// device: cpu | cuda | auto (cuda when a GPU is visible); dtype: auto (bfloat16 on cuda,
// float32 on cpu) | float32 | bfloat16. `cuda` without a visible GPU is a mops::Error (exit 1)
// that says why none is visible; unknown names are errors naming the option.
ComputeDevice resolve_compute_device(const std::string& device, const std::string& dtype);

// "cuda:0 (NVIDIA H200, 139.8 GiB, 139.1 GiB free), backbone bfloat16, LibTorch 2.11.0 (CUDA 13.0)"
std::string describe(const ComputeDevice& compute);

// Bytes free on `device` now: cudaMemGetInfo on a GPU, MemAvailable of /proc/meminfo on the CPU
// (0 when it cannot be read).
int64_t free_memory(const torch::Device& device);

// "float32" | "bfloat16" | ...
std::string dtype_name(torch::ScalarType dtype);

}  // namespace mops
