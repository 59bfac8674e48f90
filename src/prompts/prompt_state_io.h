// Saving and loading prompt states: into a results file (/state/..., with the MoPs settings
// in the root attribute "prompt_config"), and the pretrained first-layer prompts P0 on their
// own (a safetensors file with one tensor "first_prompts" (K0, C)).
#pragma once
#include <map>
#include <string>

#include "prompt_state.h"
#include "results_file.h"

namespace mops {

std::string mop_config_json(const MopConfig& config);
MopConfig mop_config_from_json(const std::string& json_text, const std::string& source);

// /state/<parameter name> for every tensor of the state, and the "prompt_config" attribute.
void write_prompt_state(ResultsFile& results, PromptState& state);
// The state a results file holds; shapes are checked against the backbone and the stored config.
PromptState read_prompt_state(const std::string& results_path, const ModelConfig& backbone);

void save_first_prompts(const std::string& path, const torch::Tensor& first_prompts,
                        const std::map<std::string, std::string>& metadata);
torch::Tensor load_first_prompts(const std::string& path, int width);  // (K0, C)

}  // namespace mops
