#include "model_config.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "errors.h"

namespace mops {

int64_t ModelConfig::parameter_count() const {
  const int64_t C = dim, F = hidden_dim, V = vocab_size, kv = kv_dim();
  const int64_t per_layer = C * C * 2 + C * kv * 2 + C * F * 3 + C * 2;
  return V * C * (tied_classifier ? 1 : 2) + n_layers * per_layer + C;
}

void ModelConfig::validate(const std::string& source) const {
  MOPS_CHECK(dim > 0 && hidden_dim > 0 && n_layers > 0 && n_heads > 0 && n_kv_heads > 0 &&
                 vocab_size > 0 && max_seq_len > 0,
             source << ": model config has a non-positive size (dim " << dim << ", hidden_dim "
                    << hidden_dim << ", n_layers " << n_layers << ", n_heads " << n_heads
                    << ", n_kv_heads " << n_kv_heads << ", vocab_size " << vocab_size
                    << ", max_seq_len " << max_seq_len << ")");
  MOPS_CHECK(dim % n_heads == 0,
             source << ": dim " << dim << " is not divisible by n_heads " << n_heads);
  MOPS_CHECK(head_dim() % 2 == 0,
             source << ": head dim " << head_dim() << " is odd; RoPE needs pairs");
  MOPS_CHECK(n_heads % n_kv_heads == 0,
             source << ": n_heads " << n_heads << " is not a multiple of n_kv_heads " << n_kv_heads);
  MOPS_CHECK(norm_eps > 0 && rope_theta > 0 && std::isfinite(norm_eps) && std::isfinite(rope_theta),
             source << ": norm_eps and rope_theta must be positive and finite");
}

std::string ModelConfig::to_json() const {
  nlohmann::json j = {{"dim", dim},
                      {"hidden_dim", hidden_dim},
                      {"n_layers", n_layers},
                      {"n_heads", n_heads},
                      {"n_kv_heads", n_kv_heads},
                      {"vocab_size", vocab_size},
                      {"max_seq_len", max_seq_len},
                      {"norm_eps", norm_eps},
                      {"rope_theta", rope_theta},
                      {"tied_classifier", tied_classifier}};
  return j.dump();
}

ModelConfig ModelConfig::from_json(const std::string& json_text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    MOPS_FAIL(source << ": model config is not valid JSON: " << e.what());
  }
  ModelConfig c;
  // nlohmann's get_to would convert any number (and a bool) to an int, wrapping or, for a
  // float out of range, undefined (found by fuzzing, fuzz/README.md): the JSON type and range are
  // checked first.
  auto field = [&](const char* name, auto& out) {
    MOPS_CHECK(j.contains(name), source << ": model config lacks '" << name << "'");
    const nlohmann::json& value = j.at(name);
    using T = std::decay_t<decltype(out)>;
    bool fits = true;
    if constexpr (std::is_same_v<T, bool>) {
      fits = value.is_boolean();
    } else if constexpr (std::is_integral_v<T>) {
      fits = (value.is_number_unsigned() && value.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max())) ||
             (value.is_number_integer() && !value.is_number_unsigned() &&
              value.get<int64_t>() >= std::numeric_limits<T>::min() &&
              value.get<int64_t>() <= std::numeric_limits<T>::max());
    } else {
      fits = value.is_number() && std::abs(value.get<double>()) <= std::numeric_limits<T>::max();
    }
    MOPS_CHECK(fits, source << ": model config field '" << name << "' has the wrong type: " << value.dump()
                            << " is not " << (std::is_same_v<T, bool> ? "a bool" : std::is_integral_v<T>
                                                  ? "an integer in range" : "a finite number"));
    value.get_to(out);
  };
  field("dim", c.dim);
  field("hidden_dim", c.hidden_dim);
  field("n_layers", c.n_layers);
  field("n_heads", c.n_heads);
  field("n_kv_heads", c.n_kv_heads);
  field("vocab_size", c.vocab_size);
  field("max_seq_len", c.max_seq_len);
  field("norm_eps", c.norm_eps);
  field("rope_theta", c.rope_theta);
  field("tied_classifier", c.tied_classifier);
  c.validate(source);
  return c;
}

int llama_hidden_dim(int dim, int multiple_of) {
  const int hidden = 2 * (4 * dim) / 3;
  return multiple_of * ((hidden + multiple_of - 1) / multiple_of);
}

}  // namespace mops
