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

torch::Tensor plus_update(const torch::Tensor& y, const LowRankUpdate& update, const torch::Tensor& x,
                          at::Generator* dropout_masks) {
  if (!update.defined()) return y;
  if (!dropout_masks || update.dropout == 0) return y + update(x);
  const double keep = 1 - update.dropout;
  auto mask = torch::empty(x.sizes(), torch::kFloat32).bernoulli_(keep, *dropout_masks);  // (..., in) on the CPU
  return y + update(x * (mask / keep).to(x.device(), x.scalar_type()));
}

}  // namespace mops
