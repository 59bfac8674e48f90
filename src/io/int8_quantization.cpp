#include "int8_quantization.h"

namespace mops {

torch::Tensor Int8Weight::dequantize() const {
  return values.to(torch::kFloat32) * scales.unsqueeze(1);  // (R, K)
}

torch::Tensor int8_scales(const torch::Tensor& weight) {
  auto peak = weight.detach().abs().amax(1).to(torch::kFloat32);  // (R)
  return torch::where(peak > 0, peak / 127.0f, torch::ones_like(peak));
}

Int8Weight quantize_int8(const torch::Tensor& weight) {
  auto w = weight.detach().to(torch::kFloat32);  // (R, K)
  Int8Weight result;
  result.scales = int8_scales(w).contiguous();                                    // (R)
  auto steps = (w / result.scales.unsqueeze(1)).round().clamp(-127, 127);        // (R, K)
  result.values = steps.to(torch::kInt8).contiguous();
  return result;
}

}  // namespace mops
