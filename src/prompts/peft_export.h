// A trained state in PEFT's adapter format (issue 19), for a Hugging Face export of its backbone
// (`mops convert --to hf`): P0 as a prompt-tuning adapter (PEFT's PROMPT_TUNING: K0 virtual
// tokens in front of the input embeddings, at positions 0 .. K0 - 1, as mops puts them), and
// LoRA's updates as a LoRA adapter (q/k updates' B rows in the rotate-half layout of the export,
// `layers_to_transform` the adapted layers). Each adapter is a directory of adapter_config.json
// and adapter_model.safetensors that peft.PeftModel.from_pretrained loads. The mid prompts, the
// gate and MPT's factors act at L_mid, where PEFT has no adapter; the whole state goes into a
// format of its own, DIR/mops/: state.safetensors (every tensor under its /state/ name, float32)
// and config.json (the prompt config, the backbone's shape, and what each tensor is).
#pragma once
#include <string>
#include <vector>

#include "prompt_state.h"

namespace mops {

// Writes DIR/prompt_tuning, for LoRA DIR/lora, and DIR/mops (each made if missing; DIR must
// exist); returns the directories written.
std::vector<std::string> save_peft_adapters(PromptState& state, const std::string& directory);

}  // namespace mops
