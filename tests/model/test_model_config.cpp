// Tests for ModelConfig::from_json / validate (model_config.h): the JSON type and range of each
// field are checked before conversion (cases found by fuzzing, fuzz/README.md).
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "model_config.h"
#include "test_support.h"

namespace mops {
namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 64;
  c.max_seq_len = 32;
  return c;
}

// tiny_config's JSON with FIELD's value text replaced by VALUE.
std::string with_field(const std::string& field, const std::string& value) {
  std::string text = tiny_config().to_json();
  const size_t key = text.find("\"" + field + "\":");
  const size_t start = key + field.size() + 3, end = text.find_first_of(",}", start);
  return text.substr(0, start) + value + text.substr(end);
}

TEST(ModelConfigJson, RoundTrips) {
  const ModelConfig c = ModelConfig::from_json(tiny_config().to_json(), "m");
  EXPECT_EQ(c.dim, 16);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_TRUE(c.tied_classifier);
}

TEST(ModelConfigJson, RejectsNumbersThatDoNotFit) {
  // (field, value, the value as the message prints it)
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"dim", "1e300", "1e+300"},     // float to int: undefined behaviour before
      {"dim", "16.5", "16.5"},        // truncated to 16 before
      {"dim", "4294967312", "4294967312"},  // 2^32 + 16: wrapped to 16 before
      {"n_layers", "true", "true"},   // a bool read as 1 before
      {"vocab_size", "-9223372036854775808", "-9223372036854775808"},
      {"norm_eps", "1e300", "1e+300"},  // infinity as a float before
      {"rope_theta", "\"10000\"", "\"10000\""},
      {"tied_classifier", "1", "1"},
  };
  for (const auto& [field, value, printed] : cases) {
    const std::string error = error_of([&] { ModelConfig::from_json(with_field(field, value), "m"); });
    EXPECT_NE(error.find("m: model config field '" + field + "' has the wrong type: " + printed), std::string::npos)
        << field << " = " << value << ": " << error;
  }
}

TEST(ModelConfigJson, ValidateRejectsInfiniteNormEps) {
  ModelConfig c = tiny_config();
  c.norm_eps = std::numeric_limits<float>::infinity();
  EXPECT_NE(error_of([&] { c.validate("m"); }).find("must be positive and finite"), std::string::npos);
}

}  // namespace
}  // namespace mops
