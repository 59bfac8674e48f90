// What a prompt run (centralized_run.h, sim/federated_run.h) is told, as plain values: the
// command line fills them (src/cli/prompt_options.h), tests set them directly.
//
// One seed decides the run's randomness; the parts draw from fixed offsets of it: P0's random
// start seed + 100 and its batches seed + 101, the gate's init seed + 11, the random mid prompts
// seed + 7, the main loop's batches seed (TrainOptions::seed).
#pragma once
#include <cstdint>
#include <string>

#include "prompt_state.h"
#include "prompt_training.h"

namespace mops {

// The first-layer prompts P0 (K0 of them), pretrained briefly through the whole model.
struct FirstPromptSettings {
  int count = 10;       // K0
  int steps = 20;       // pretraining steps (Adam on the response loss)
  double lr = 1e-2;
  int batch_size = 8;
  std::string file;     // P0 saved by `mops prompts pretrain`, used instead of pretraining; empty: pretrain
};

struct PromptRunSettings {
  FirstPromptSettings p0;
  // experts, prompts_per_expert, mid_layer, gate_layer, gate_hidden, gate_scale, gate_temperature, gate_top_k and
  // gate_route;
  // method and first_prompt_count
  // are set per method from the method run and P0 (method_config in run_start.h).
  MopConfig mop;
  std::string mid_init = "random";  // the mid prompts' start: random | p0 (init_mid_prompts)
  int gate_pretrain_steps = 200;    // MoPs: gate pretraining on task labels; 0: none
  // The main loop's lr, gate_lr, batch_size, eval_batch_size and seed; steps and eval_every of
  // a centralized run (a federated run's local steps are FederatedRunSettings::local_steps).
  TrainOptions train;
  std::string activation_cache = "auto";  // auto | MiB | 0 (activation_cache_budget)
  uint64_t seed = 0;
  std::string config_json;  // the resolved options: the results files' "config" (and what --resume compares)
};

}  // namespace mops
