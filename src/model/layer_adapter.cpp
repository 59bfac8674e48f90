#include "layer_adapter.h"

namespace mops {

torch::Tensor LowRankUpdate::operator()(const torch::Tensor& x) const {
  const auto dtype = x.scalar_type();
  return torch::linear(torch::linear(x, a.to(dtype)), b.to(dtype)) * scale;  // (..., out)
}

const LayerAdapter& adapter_or_none(const LayerAdapter* adapter) {
  static const LayerAdapter none;
  return adapter ? *adapter : none;
}

torch::Tensor scaled_by(const torch::Tensor& x, const torch::Tensor& scale) {
  return scale.defined() ? x * scale.to(x.scalar_type()) : x;
}

torch::Tensor plus_update(const torch::Tensor& y, const LowRankUpdate& update, const torch::Tensor& x) {
  return update.defined() ? y + update(x) : y;
}

}  // namespace mops
