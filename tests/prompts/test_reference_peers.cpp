// The peer methods' prompted forward against an independent NumPy reference
// (tests/reference/peer_methods_reference.py, run by ctest before these tests): LoRA on all seven
// matrices, IA3, prefix tuning and MPT with random states on a random llama2.c model.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "build_paths.h"
#include "checkpoint.h"
#include "prompted_forward.h"
#include "safetensors.h"
#include "test_support.h"

namespace mops {
namespace {

// Where ctest's reference_peer_methods step wrote its outputs (tests/CMakeLists.txt).
std::string reference_dir() { return MOPS_TEST_WORK_DIR "/reference/peers"; }

nlohmann::json reference() {
  std::ifstream in(reference_dir() + "/peers.json");
  EXPECT_TRUE(in) << "run tests/reference/peer_methods_reference.py first (ctest does)";
  return nlohmann::json::parse(in);
}

// The reference's state for `method`: its config, and every tensor copied in by its /state/ name.
PromptState reference_state(const nlohmann::json& ref, PromptMethod method, const ModelConfig& model) {
  MopConfig c;
  c.method = method;
  c.first_prompt_count = ref["first_prompts"];
  c.experts = ref["experts"];
  c.prompts_per_expert = ref["prompts_per_expert"];
  c.mid_layer = ref["mid_layer"];
  c.lora_rank = ref["lora_rank"];
  c.lora_alpha = ref["lora_alpha"];
  c.lora_targets = ref["lora_targets"].get<std::vector<std::string>>();
  c.task_count = ref["tasks"];
  PromptState state(c.resolved(model), model);
  SafetensorsReader reader(reference_dir() + "/" + method_name(method) + ".safetensors");
  torch::NoGradGuard no_grad;
  std::vector<std::string> copied;
  for (auto& item : state->named_parameters()) {
    EXPECT_TRUE(reader.contains(item.key())) << method_name(method) << ": the reference has no " << item.key();
    if (!reader.contains(item.key())) continue;
    item.value().copy_(reader.float_tensor(item.key()));
    copied.push_back(item.key());
  }
  EXPECT_EQ(copied.size(), reader.names().size()) << method_name(method) << ": tensors the state does not have";
  return state;
}

TEST(ReferencePeerMethods, PromptedForwardMatchesNumPy) {
  const auto ref = reference();
  auto model = load_model(reference_dir() + "/model.bin").model;
  TokenizedExample example;
  example.ids = ref["ids"].get<std::vector<int64_t>>();
  example.task = ref["task"];
  example.question_begin = 1;
  example.question_end = 6;
  example.response_begin = 6;
  const auto batch = make_batch({example}, 0, 1);
  const auto shape = ref["logits_shape"].get<std::vector<int64_t>>();
  for (const auto& name : ref["methods"].get<std::vector<std::string>>()) {
    const auto method = parse_prompt_method(name);
    auto state = reference_state(ref, method, model->config());
    torch::NoGradGuard no_grad;
    const auto ours = prompted_forward(model, state, batch).logits[0];  // (T, V)
    const auto expected = read_float32_file(reference_dir() + "/" + name + ".logits.f32", shape);
    const double diff = (ours - expected).abs().max().item<double>();
    std::printf("%s vs NumPy: max |logit difference| %.3g (max |logit| %.3g)\n", name.c_str(), diff,
                expected.abs().max().item<double>());
    EXPECT_LT(diff, 1e-4) << name;
  }
}

}  // namespace
}  // namespace mops
