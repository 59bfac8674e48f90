// The prompt options `mops train` and `mops federate` share: P0, the MoPs shape, the mid-prompt
// initialisation, gate pretraining, the optimizer and the activation cache; their checks against
// the model, and the settings they fill (src/prompts/prompt_run_settings.h).
#pragma once
#include "cli_options.h"
#include "model_config.h"
#include "prompt_run_settings.h"

namespace mops {

// --p0-prompts, --p0-steps, --p0-lr, --p0-batch-size.
void add_p0_options(CommandLine& cl);

// The P0 options, --p0 FILE, --experts, --prompts-per-expert, --mid-layer, --gate-layer,
// --gate-hidden, --gate-scale, --gate-temperature, --gate-top-k, --gate-route, --gate-noise, --gate-balance,
// --mid-init,
// --gate-pretrain-steps, --lr, --gate-lr, --lora-rank, --lora-alpha, --lora-targets,
// --batch-size, --eval-batch-size, --activation-cache.
void add_prompt_options(CommandLine& cl);

// --p0-prompts leaving room for tokens in the model's max_seq_len; a UsageError otherwise.
void validate_p0_options(const CommandLine& cl, const ModelConfig& model);

// The prompt options that depend on the model: --mid-layer in [1, L-1] (or -1), --gate-layer in
// [0, L_mid] (or -1), the prompt
// positions leaving room for tokens, --gate-top-k at most --experts, --gate-route hash without
// the options that act on the gate's output, a valid --activation-cache; a UsageError naming the
// option.
void validate_prompt_options(const CommandLine& cl, const ModelConfig& model);

// The P0 options (and --p0 FILE where the command has it).
FirstPromptSettings first_prompt_settings(const CommandLine& cl);

// Every option add_prompt_options registers, --seed and the resolved options as JSON; the
// command sets what only it has (train.steps and train.eval_every of `mops train`).
PromptRunSettings prompt_run_settings(const CommandLine& cl);

}  // namespace mops
