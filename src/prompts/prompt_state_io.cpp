#include "prompt_state_io.h"

#include <nlohmann/json.hpp>

#include "errors.h"
#include "safetensors.h"

namespace mops {

std::string mop_config_json(const MopConfig& c) {
  return nlohmann::json{{"method", method_name(c.method)},     {"first_prompts", c.first_prompt_count},
                        {"experts", c.experts},                {"prompts_per_expert", c.prompts_per_expert},
                        {"mid_layer", c.mid_layer},            {"gate_hidden", c.gate_hidden},
                        {"gate_scale", gate_scale_name(c.gate_scale)}, {"gate_temperature", c.gate_temperature},
                        {"gate_top_k", c.gate_top_k},         {"gate_layer", c.gate_layer},
                        {"gate_route", gate_route_name(c.gate_route)}, {"lora_rank", c.lora_rank},
                        {"lora_alpha", c.lora_alpha},          {"lora_targets", c.lora_targets},
                        {"lora_layers", c.lora_all_layers ? "all" : "upper"}, {"lora_dropout", c.lora_dropout},
                        {"tasks", c.task_count}}
      .dump();
}

MopConfig mop_config_from_json(const std::string& json_text, const std::string& source) {
  try {
    const auto j = nlohmann::json::parse(json_text);
    MopConfig c;
    c.method = parse_prompt_method(j.at("method"));
    c.first_prompt_count = j.at("first_prompts");
    c.experts = j.at("experts");
    c.prompts_per_expert = j.at("prompts_per_expert");
    c.mid_layer = j.at("mid_layer");
    c.gate_hidden = j.at("gate_hidden");
    c.gate_scale = parse_gate_scale(j.at("gate_scale"));
    c.gate_temperature = j.value("gate_temperature", 1.0);  // files from before it existed: the paper's 1
    c.gate_top_k = j.value("gate_top_k", 0);                // and all experts
    c.gate_layer = j.value("gate_layer", c.mid_layer);      // and L_mid
    c.gate_route = parse_gate_route(j.value("gate_route", "gate"));  // and the gate's routing
    c.lora_rank = j.value("lora_rank", c.lora_rank);                 // (methods without LoRA)
    c.lora_alpha = j.value("lora_alpha", c.lora_alpha);
    c.lora_targets = j.value("lora_targets", c.lora_targets);
    c.task_count = j.value("tasks", 0);  // (files from before MPT)
    c.lora_all_layers = j.value("lora_layers", "upper") == "all";
    c.lora_dropout = j.value("lora_dropout", 0.0);
    return c;
  } catch (const nlohmann::json::exception& e) {
    MOPS_FAIL(source << ": prompt_config is not a valid MoPs prompt configuration (" << e.what() << ")");
  }
}

void write_prompt_state(ResultsFile& results, PromptState& state) {
  for (const auto& item : state->named_parameters()) {
    auto t = item.value().detach().to(torch::kFloat32).contiguous();
    results.write_state(item.key(), std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel()),
                        t.sizes().vec());
  }
  results.write_attribute("prompt_config", mop_config_json(state->config()));
}

PromptState read_prompt_state(const std::string& results_path, const ModelConfig& backbone) {
  const auto config = mop_config_from_json(read_string_attribute(results_path, "prompt_config"), results_path);
  const int width = backbone.dim;
  PromptState state(config, backbone);
  torch::NoGradGuard no_grad;
  for (auto& item : state->named_parameters()) {
    std::vector<int64_t> shape;
    auto values = read_state(results_path, item.key(), &shape);
    MOPS_CHECK(shape == item.value().sizes().vec(),
               results_path << ": /state/" << item.key() << " has shape " << torch::IntArrayRef(shape)
                            << " but the prompt config (E = " << config.experts << ", P = " << config.prompts_per_expert
                            << ", K0 = " << config.first_prompt_count << ") and the model width " << width << " imply "
                            << item.value().sizes());
    item.value().copy_(torch::from_blob(values.data(), {int64_t(values.size())}, torch::kFloat32).view(shape));
  }
  return state;
}

void save_first_prompts(const std::string& path, const torch::Tensor& first_prompts,
                        const std::map<std::string, std::string>& metadata) {
  write_safetensors(path, {{"first_prompts", first_prompts.detach().to(torch::kFloat32).contiguous()}}, metadata);
}

torch::Tensor load_first_prompts(const std::string& path, int width) {
  SafetensorsReader reader(path);
  MOPS_CHECK(reader.contains("first_prompts"), path << ": no tensor 'first_prompts' (write one with `mops prompts pretrain`)");
  auto prompts = reader.float_tensor("first_prompts");
  MOPS_CHECK(prompts.dim() == 2 && prompts.size(1) == width,
             path << ": first_prompts has shape " << prompts.sizes() << ", expected (K0, " << width << ")");
  return prompts.clone();
}

}  // namespace mops
