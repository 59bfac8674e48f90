#include "layer_adapter.h"

#include "errors.h"

namespace mops {

torch::Tensor LowRankUpdate::operator()(const torch::Tensor& x) const {
  const auto dtype = x.scalar_type();
  return torch::linear(torch::linear(x, a.to(dtype)), b.to(dtype)) * scale;  // (..., out)
}

const LowRankUpdate& LayerAdapter::update(const std::string& matrix) const {
  if (matrix == "wq") return wq;
  if (matrix == "wk") return wk;
  if (matrix == "wv") return wv;
  if (matrix == "wo") return wo;
  if (matrix == "w1") return w1;
  if (matrix == "w2") return w2;
  MOPS_CHECK(matrix == "w3", "no LoRA target '" << matrix << "' (wq, wk, wv, wo, w1, w2, w3)");
  return w3;
}

LowRankUpdate& LayerAdapter::update(const std::string& matrix) {
  return const_cast<LowRankUpdate&>(static_cast<const LayerAdapter&>(*this).update(matrix));
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
