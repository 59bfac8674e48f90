// Compute on a device and in a dtype (src/base/compute_device.h, --device, --dtype).
//   Dtypes*: a bfloat16 backbone on the CPU (runs everywhere, CI included): prompts, gate, grads
//            and the loss stay float32; perplexity stays close to float32's.
//   Gpu*:    the same on a CUDA GPU (ctest label gpu); they skip, saying why, where none is visible.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "activation_cache.h"
#include "compute_device.h"
#include "evaluation.h"
#include "prompted_forward.h"
#include "test_support.h"
#include "tiny_mops.h"

namespace mops {
namespace {

// The tiny backbone moved to `device` in `dtype`, packed again there.
Llama tiny_backbone_on(const torch::Device& device, torch::ScalarType dtype) {
  auto model = tiny_backbone();
  model->freeze_on(device, dtype);
  return model;
}

PromptState tiny_state_on(const torch::Device& device) {
  auto state = random_state(tiny_mop(PromptMethod::kMop), 5);
  state->to(device);
  return state;
}

double overall_perplexity(Llama& backbone, PromptState& state, const std::vector<TokenizedExample>& test) {
  return evaluate_prompted(backbone, state, test, {"a", "b", "c", "d"}, 8).report.overall.perplexity;
}

TEST(Dtypes, Bfloat16BackboneKeepsPromptsGateGradientsAndLossInFloat32) {
  auto backbone = tiny_backbone_on(torch::kCPU, torch::kBFloat16);
  EXPECT_EQ(backbone->dtype(), torch::kBFloat16);
  auto state = tiny_state_on(torch::kCPU);
  const auto examples = tiny_examples(4, 3);
  const auto batch = make_batch(examples, 0, 4);
  const auto lower = lower_half(backbone, state, batch.ids, batch.question_mask);
  EXPECT_EQ(lower.states.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(lower.gate_input.scalar_type(), torch::kFloat32);
  auto out = upper_half_loss(backbone, state, lower, batch);
  EXPECT_EQ(out.loss.scalar_type(), torch::kFloat32);
  EXPECT_EQ(out.gate.scalar_type(), torch::kFloat32);
  out.loss.backward();
  for (const auto& p : state->parameters()) {
    if (!p.requires_grad()) continue;
    EXPECT_EQ(p.scalar_type(), torch::kFloat32);
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>());
  }
}

// bfloat16 keeps 8 significant bits: on the tiny model (weights 4x the init, so that the
// logits are far from uniform) test perplexity moves by well under 2 %.
TEST(Dtypes, Bfloat16PerplexityIsWithinTwoPercentOfFloat32) {
  const auto test = tiny_examples(32, 21);
  auto f32 = tiny_backbone_on(torch::kCPU, torch::kFloat32);
  auto bf16 = tiny_backbone_on(torch::kCPU, torch::kBFloat16);
  auto state = tiny_state_on(torch::kCPU);
  const double a = overall_perplexity(f32, state, test), b = overall_perplexity(bf16, state, test);
  std::printf("test perplexity: float32 %.5f, bfloat16 %.5f (%+.3f %%)\n", a, b, 100 * (b / a - 1));
  EXPECT_NEAR(b / a, 1.0, 0.02);
  EXPECT_NE(a, b);  // the dtype is really used
}

TEST(Dtypes, UnknownDeviceAndDtypeNameTheOption) {
  EXPECT_NE(error_of([] { resolve_compute_device("tpu", "auto"); }).find("--device 'tpu' is not one of cpu, cuda, auto"),
            std::string::npos);
  EXPECT_NE(error_of([] { resolve_compute_device("cpu", "fp8"); }).find("--dtype 'fp8' is not one of auto, float32, bfloat16"),
            std::string::npos);
  const auto cpu = resolve_compute_device("cpu", "auto");
  EXPECT_TRUE(cpu.device.is_cpu());
  EXPECT_EQ(cpu.dtype, torch::kFloat32);
}

// --- on a GPU (label gpu) ---

TEST(GpuPlacement, AStepKeepsBackbonePromptsGateAdamAndCacheOnTheGpu) {
  MOPS_NEEDS_GPU();
  const auto compute = resolve_compute_device("cuda", "float32");
  auto backbone = tiny_backbone_on(compute.device, compute.dtype);
  auto state = tiny_state_on(compute.device);
  const auto examples = tiny_examples(16, 4);
  ActivationCache cache(int64_t(1) << 30);
  TrainOptions options;
  options.steps = 4;
  options.batch_size = 4;
  options.lower_cache = &cache;
  train_local(backbone, state, examples, options);
  for (const auto& p : backbone->parameters()) EXPECT_TRUE(p.is_cuda());
  for (const auto& p : state->parameters()) EXPECT_TRUE(p.is_cuda());
  const auto lower = cache.lower(backbone, state, examples, {0, 1});
  EXPECT_TRUE(lower.states.is_cuda());
  EXPECT_TRUE(lower.gate_input.is_cuda());
  EXPECT_GT(cache.bytes(), 0);
}

// The same backbone, state and batch on the CPU and on the GPU, both float32: the same logits
// and gate to float32 rounding (different kernels sum in different orders).
TEST(GpuPlacement, Float32LogitsAndGateMatchTheCpu) {
  MOPS_NEEDS_GPU();
  const auto compute = resolve_compute_device("cuda", "float32");
  auto cpu_backbone = tiny_backbone_on(torch::kCPU, torch::kFloat32);
  auto gpu_backbone = tiny_backbone_on(compute.device, torch::kFloat32);
  auto cpu_state = tiny_state_on(torch::kCPU);
  auto gpu_state = tiny_state_on(compute.device);
  const auto batch = make_batch(tiny_examples(8, 6), 0, 8);
  const auto on_cpu = prompted_forward(cpu_backbone, cpu_state, batch);
  const auto on_gpu = prompted_forward(gpu_backbone, gpu_state, batch);
  EXPECT_TRUE(on_gpu.logits.cpu().allclose(on_cpu.logits, 1e-4, 1e-4)) << (on_gpu.logits.cpu() - on_cpu.logits).abs().max();
  EXPECT_TRUE(on_gpu.gate.cpu().allclose(on_cpu.gate, 1e-5, 1e-6));
}

TEST(GpuPlacement, Bfloat16PerplexityIsWithinTwoPercentOfFloat32) {
  MOPS_NEEDS_GPU();
  const auto device = resolve_compute_device("cuda", "auto").device;
  const auto test = tiny_examples(32, 21);
  auto f32 = tiny_backbone_on(device, torch::kFloat32);
  auto bf16 = tiny_backbone_on(device, torch::kBFloat16);
  auto state = tiny_state_on(device);
  const double a = overall_perplexity(f32, state, test), b = overall_perplexity(bf16, state, test);
  std::printf("GPU test perplexity: float32 %.5f, bfloat16 %.5f (%+.3f %%)\n", a, b, 100 * (b / a - 1));
  EXPECT_NEAR(b / a, 1.0, 0.02);
}

// Deterministic algorithms are on (compute_device.h): the same seed gives the same bits.
TEST(GpuDeterminism, TheSameLocalTrainingTwiceGivesTheSameBits) {
  MOPS_NEEDS_GPU();
  const auto compute = resolve_compute_device("cuda", "bfloat16");
  auto backbone = tiny_backbone_on(compute.device, compute.dtype);
  const auto examples = tiny_examples(16, 8);
  TrainOptions options;
  options.steps = 6;
  options.batch_size = 4;
  torch::Tensor first;
  for (int run = 0; run < 2; ++run) {
    auto state = tiny_state_on(compute.device);
    train_local(backbone, state, examples, options);
    if (run == 0) first = state->mid_prompts.detach().clone();
    else EXPECT_TRUE(torch::equal(first, state->mid_prompts.detach()));
  }
}

}  // namespace
}  // namespace mops
