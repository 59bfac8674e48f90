#include "int8_quantization.h"

#include "errors.h"

namespace mops {

torch::Tensor Int8Weight::dequantize() const {
  return values.to(torch::kFloat32) * scales.unsqueeze(1);  // (R, K)
}

torch::Tensor int8_scales(const torch::Tensor& weight) {
  auto peak = weight.detach().abs().amax(1).to(torch::kFloat32);  // (R)
  return torch::where(peak > 0, peak / 127.0f, torch::ones_like(peak));
}

torch::Tensor round_to_int8_grid(const torch::Tensor& weight, const torch::Tensor& scales) {
  auto steps = weight.dim() == 2 ? scales.unsqueeze(1) : scales;
  return (weight / steps).round().clamp(-127, 127) * steps;
}

Int8Weight quantize_int8(const torch::Tensor& weight) {
  auto w = weight.detach().to(torch::kFloat32);  // (R, K)
  auto scales = int8_scales(w);                  // (R)
  return int8_from_grid(round_to_int8_grid(w, scales), scales);
}

Int8Weight int8_from_grid(const torch::Tensor& weight, const torch::Tensor& scales) {
  Int8Weight result;
  result.scales = scales.to(torch::kFloat32).contiguous();
  auto steps = (weight.to(torch::kFloat32) / result.scales.unsqueeze(1)).round();  // (R, K)
  MOPS_CHECK(steps.abs().max().item<float>() <= 127, "int8 weights out of range [-127, 127]");
  result.values = steps.to(torch::kInt8).contiguous();
  return result;
}

}  // namespace mops
