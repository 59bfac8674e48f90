#include "prompt_options.h"

#include <limits>
#include <sstream>

#include "activation_cache.h"

namespace mops {

constexpr int kMaxInt = std::numeric_limits<int>::max();

void add_p0_options(CommandLine& cl) {
  cl.add_number<int>("p0-prompts", 10, Range::closed(1, kMaxInt), "K0: first-layer prompts (fewer than the model's max_seq_len)");
  cl.add_number<int>("p0-steps", 20, Range::closed(0, kMaxInt), "P0 pretraining steps (paper: 20)");
  cl.add_number<double>("p0-lr", 1e-2, Range::closed(0, 10), "P0 pretraining learning rate (Adam)");
  cl.add_number<int>("p0-batch-size", 8, Range::closed(1, 4096), "P0 pretraining batch size");
}

void add_prompt_options(CommandLine& cl) {
  add_p0_options(cl);
  cl.options().add_options()
      ("p0", po::value<std::string>()->value_name("FILE"), "pretrained first-layer prompts (mops prompts pretrain); "
                                                         "without it P0 is pretrained here");
  cl.add_number<int>("experts", 7, Range::closed(1, 4096), "E: prompt experts");
  cl.add_number<int>("prompts-per-expert", 10, Range::closed(1, kMaxInt),
                     "P: prompts per expert (E x P must be fewer than the model's max_seq_len)");
  cl.add_number<int>("mid-layer", -1, Range::closed(-1, kMaxInt),
                     "L_mid where the mid prompts enter: 1 to L-1 for a model of L layers, or -1 for L/2");
  cl.add_number<int>("gate-layer", -1, Range::closed(-1, kMaxInt),
                     "the layer whose input the gate reads (the mean over the question tokens): 0 (the token "
                     "embeddings) to L_mid, or -1 for L_mid as in the paper");
  cl.add_number<int>("gate-hidden", 32, Range::closed(1, 1 << 20), "gate MLP hidden width");
  cl.add_choice("gate-scale", "experts", {"experts", "paper"},
                "experts: attention x E G_e (a uniform gate = the baseline); paper: attention x G_e");
  cl.add_choice("mid-init", "random", {"random", "p0"},
                "mid prompts start as: random (at the token embeddings' scale; lower training loss, README) or p0 "
                "(where P0 reaches L_mid)");
  cl.add_number<int>("gate-pretrain-steps", 200, Range::closed(0, kMaxInt), "gate pretraining on task labels (0: none)");
  cl.add_number<double>("lr", 1e-3, Range::closed(0, 10), "learning rate (Adam; paper: 1e-3)");
  cl.add_number<double>("gate-temperature", 1.0, Range::open_closed(0, 100),
                        "tau of the gate's softmax, softmax(logits / tau): 1 as in the paper, > 1 softer routing");
  cl.add_number<int>("gate-top-k", 0, Range::closed(0, 4096),
                     "noisy top-k routing (Shazeer et al. 2017): only the k largest gate logits enter the softmax, "
                     "the other experts get weight 0, in training and at test time; 0: all experts (the paper)", "K");
  cl.add_choice("gate-route", "gate", {"gate", "hash", "knn"},
                "gate: the gate's output weighs the experts (MoPs); hash: a control that routes each example wholly to "
                "one expert by a hash of its question tokens, whatever its task (the gate is neither pretrained nor "
                "used; README, issue 17); knn: per-task experts, by the task in training and by the nearest task "
                "centroid of the gate's input at test time (the gate is not used; issue 18)");
  cl.add_number<double>("gate-noise", 0.0, Range::closed(0, 100),
                        "standard deviation of Gaussian noise added to the gate's logits in each training step "
                        "(a fixed scale, not Shazeer's learned one); never at test time; 0: none (the paper)");
  cl.add_number<double>("gate-balance", 0.0, Range::closed(0, 100),
                        "weight of SMoP's load-balancing term (squared coefficient of variation of the experts' load "
                        "over a batch) in the main loop's loss; 0: none, as in the paper (SMoP: 0.01)");
  cl.add_number<double>("gate-lr", std::nullopt, Range::closed(0, 10),
                        "the gate's learning rate in the main loop (default: --lr; 0 keeps the pretrained gate frozen)",
                        "LR");
  cl.add_number<int>("lora-rank", 8, Range::closed(1, 4096), "LoRA (--method lora): the rank r of each update B A");
  cl.add_number<double>("lora-alpha", 16, Range::open_closed(0, 1e6), "LoRA: the update's scale is alpha / r");
  cl.options().add_options()
      ("lora-targets", po::value<std::string>()->default_value("wq,wv")->value_name("LIST"),
       "LoRA: the matrices adapted in every layer >= L_mid, a comma list of wq, wk, wv, wo (attention), w1, w3, w2 "
       "(SwiGLU gate, up, down)");
  cl.add_number<double>("lora-dropout", 0.0, Range::half_open(0, 1),
                        "LoRA: dropout on each update's input in training (PEFT's lora_dropout; 0: none, PEFT's "
                        "default), its masks drawn from the run's seed", "P");
  cl.add_choice("lora-layers", "upper", {"upper", "all"},
                "LoRA: upper, the layers >= L_mid (like every other method, nothing below L_mid needs a backward "
                "pass and the activation cache applies), or all (the usual LoRA setting; autograd through the whole "
                "model, no activation cache)");
  cl.add_number<int>("batch-size", 1, Range::closed(1, 4096), "examples per step (paper: 1)");
  cl.add_number<int>("eval-batch-size", 16, Range::closed(1, 4096), "test examples per forward pass");
  cl.options().add_options()
      ("activation-cache", po::value<std::string>()->default_value("auto")->value_name("MIB"),
       "keep each training example's states at L_mid (they depend only on the frozen model and P0) and run only "
       "the upper half again: auto (a quarter of the free memory, shared by the node's ranks; off under 64 MiB), "
       "a size in MiB, or 0 (off)");
}

namespace {

// --lr, --gate-lr, --batch-size, --eval-batch-size and --seed; steps and eval_every are left to the command.
TrainOptions optimizer_options(const CommandLine& cl) {
  TrainOptions o;
  o.lr = cl.get<double>("lr");
  if (cl.has("gate-lr")) o.gate_lr = cl.get<double>("gate-lr");
  o.gate_balance = cl.get<double>("gate-balance");
  o.gate_noise = cl.get<double>("gate-noise");
  o.batch_size = cl.get<int>("batch-size");
  o.eval_batch_size = cl.get<int>("eval-batch-size");
  o.seed = cl.seed();
  return o;
}

// --lora-targets as a list: "wq, wv" -> {wq, wv}.
std::vector<std::string> lora_targets(const CommandLine& cl) {
  std::vector<std::string> targets;
  std::stringstream list(cl.get<std::string>("lora-targets"));
  for (std::string item; std::getline(list, item, ',');) {
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) targets.push_back(item);
  }
  return targets;
}

std::string no_room_for_tokens(const ModelConfig& model) {
  return " leave no room for tokens in the model's max_seq_len " + std::to_string(model.max_seq_len) +
         " (prompt positions and tokens share it)";
}

}  // namespace

void validate_p0_options(const CommandLine& cl, const ModelConfig& model) {
  const int first = cl.get<int>("p0-prompts");
  cl.require(first < model.max_seq_len, "--p0-prompts " + std::to_string(first) + no_room_for_tokens(model));
}

void validate_prompt_options(const CommandLine& cl, const ModelConfig& model) {
  const int layers = model.n_layers;
  const int mid = cl.get<int>("mid-layer");
  cl.require(layers >= 2, "the model has 1 layer; mid-layer prompts need a model of at least 2");
  cl.require(mid == -1 || mid <= layers - 1,
             "--mid-layer " + std::to_string(mid) + " is outside [1, " + std::to_string(layers - 1) +
                 "] for this model of " + std::to_string(layers) + " layers (or -1 for L/2 = " +
                 std::to_string(layers / 2) + ")");
  cl.require(mid != 0, "--mid-layer 0 would replace P0 itself; give 1 to " + std::to_string(layers - 1) + " or -1");
  const int resolved_mid = mid == -1 ? layers / 2 : mid;
  const int gate_layer = cl.get<int>("gate-layer");
  cl.require(gate_layer <= resolved_mid, "--gate-layer " + std::to_string(gate_layer) + " is above L_mid = " +
                                             std::to_string(resolved_mid) + ": the gate reads a layer from 0 to L_mid "
                                             "(or -1 for L_mid)");
  validate_p0_options(cl, model);
  const int64_t mid_positions = int64_t(cl.get<int>("experts")) * cl.get<int>("prompts-per-expert");
  cl.require(mid_positions < model.max_seq_len, "--experts " + std::to_string(cl.get<int>("experts")) +
                                          " x --prompts-per-expert " + std::to_string(cl.get<int>("prompts-per-expert")) +
                                          " = " + std::to_string(mid_positions) + " mid prompt positions" +
                                          no_room_for_tokens(model));
  const int top_k = cl.get<int>("gate-top-k");
  cl.require(top_k <= cl.get<int>("experts"), "--gate-top-k " + std::to_string(top_k) + " is more than the --experts " +
                                                  std::to_string(cl.get<int>("experts")) + " (0: all of them)");
  const auto targets = lora_targets(cl);
  for (const auto& target : targets) {
    cl.require(is_lora_target(target), "--lora-targets: '" + target + "' is not one of wq, wk, wv, wo, w1, w2, w3");
  }
  cl.require(!targets.empty(), "--lora-targets names no matrix; give a comma list such as wq,wv");
  const auto route = cl.get<std::string>("gate-route");
  if (route != "gate") {
    for (const char* gate_only : {"gate-noise", "gate-balance"}) {
      cl.require(cl.get<double>(gate_only) == 0, std::string("--") + gate_only + " acts on the gate's output, which "
                                                      "--gate-route " + route + " does not use: leave it at 0 or route by "
                                                      "the gate");
    }
    cl.require(top_k <= 1, "--gate-top-k " + std::to_string(top_k) + " with --gate-route " + route + ": it sends "
                           "each example to one expert (top-1); give 0 or 1, or route by the gate");
  }
  as_usage_error([&] { return activation_cache_budget(cl.get<std::string>("activation-cache"), torch::kCPU); });
}

FirstPromptSettings first_prompt_settings(const CommandLine& cl) {
  FirstPromptSettings p0;
  p0.count = cl.get<int>("p0-prompts");
  p0.steps = cl.get<int>("p0-steps");
  p0.lr = cl.get<double>("p0-lr");
  p0.batch_size = cl.get<int>("p0-batch-size");
  if (cl.has("p0")) p0.file = cl.get<std::string>("p0");
  return p0;
}

PromptRunSettings prompt_run_settings(const CommandLine& cl) {
  PromptRunSettings s;
  s.p0 = first_prompt_settings(cl);
  s.mop.experts = cl.get<int>("experts");
  s.mop.prompts_per_expert = cl.get<int>("prompts-per-expert");
  s.mop.mid_layer = cl.get<int>("mid-layer");
  s.mop.gate_layer = cl.get<int>("gate-layer");
  s.mop.gate_hidden = cl.get<int>("gate-hidden");
  s.mop.gate_scale = parse_gate_scale(cl.get<std::string>("gate-scale"));
  s.mop.gate_temperature = cl.get<double>("gate-temperature");
  s.mop.gate_top_k = cl.get<int>("gate-top-k");
  s.mop.gate_route = parse_gate_route(cl.get<std::string>("gate-route"));
  s.mop.lora_rank = cl.get<int>("lora-rank");
  s.mop.lora_alpha = cl.get<double>("lora-alpha");
  s.mop.lora_targets = lora_targets(cl);
  s.mop.lora_all_layers = cl.get<std::string>("lora-layers") == "all";
  s.mop.lora_dropout = cl.get<double>("lora-dropout");
  s.mid_init = cl.get<std::string>("mid-init");
  s.gate_pretrain_steps = cl.get<int>("gate-pretrain-steps");
  s.train = optimizer_options(cl);
  s.activation_cache = cl.get<std::string>("activation-cache");
  s.seed = cl.seed();
  s.config_json = cl.resolved_json();
  return s;
}

}  // namespace mops
