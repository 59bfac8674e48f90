// MoPs on a tiny random backbone: the gate, the two gate scalings, one-hot gates isolating
// an expert, gradients against finite differences, training lowering the loss, and the
// errors for impossible settings and non-finite losses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "checkpoint.h"
#include "prompt_state_io.h"
#include "prompt_training.h"
#include "prompted_forward.h"
#include "stable_hash.h"
#include "test_support.h"
#include "tiny_mops.h"

namespace mops {
namespace {

// Records what run_layers() shows it: each layer's input and attention probabilities.
class LayerRecorder : public LayerObserver {
 public:
  explicit LayerRecorder(bool attention) : attention_(attention) {}
  bool wants_attention() const override { return attention_; }
  void on_layer(int layer, const torch::Tensor& input, const torch::Tensor& attention) override {
    inputs.resize(std::max<size_t>(inputs.size(), layer + 1));
    attentions.resize(inputs.size());
    inputs[layer] = input;
    attentions[layer] = attention;
  }
  std::vector<torch::Tensor> inputs, attentions;  // per layer seen (B, S, C), (B, H, S, Sk)

 private:
  bool attention_;
};

void copy_prompts(PromptState& to, PromptState& from) {
  torch::NoGradGuard no_grad;
  to->first_prompts.copy_(from->first_prompts);
  to->mid_prompts.copy_(from->mid_prompts);
}

TEST(Gate, RowsSumToOne) {
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kMop), 2);
  const auto batch = make_batch(tiny_examples(6, 3), 0, 6);
  const auto gate = prompted_forward(backbone, state, batch).gate;  // (B, E)
  EXPECT_EQ(gate.sizes(), (std::vector<int64_t>{6, 4}));
  EXPECT_TRUE(gate.sum(1).allclose(torch::ones({6}), 0, 1e-6));
  EXPECT_TRUE((gate > 0).all().item<bool>());
}

TEST(Gate, UniformGateUnderExpertsScalingIsTheBaseline) {
  auto backbone = tiny_backbone();
  auto mop = random_state(tiny_mop(PromptMethod::kMop), 4);
  auto baseline = random_state(tiny_mop(PromptMethod::kPrompt), 5);
  copy_prompts(baseline, mop);
  {
    torch::NoGradGuard no_grad;
    mop->gate->w2->weight.zero_();
    mop->gate->w2->bias.zero_();  // gate = 1/E everywhere, column weights E * 1/E = 1
  }
  const auto batch = make_batch(tiny_examples(5, 6), 0, 5);
  const auto ours = prompted_forward(backbone, mop, batch).logits;
  const auto reference = prompted_forward(backbone, baseline, batch).logits;
  std::printf("max |MoPs(uniform) - baseline| = %.2e\n", (ours - reference).abs().max().item<float>());
  EXPECT_TRUE(ours.allclose(reference, 0, 1e-5));
  // Under `paper` scaling the same uniform gate divides the prompt attention by E: different.
  auto paper = random_state(tiny_mop(PromptMethod::kMop, GateScale::kPaper), 4);
  copy_prompts(paper, mop);
  {
    torch::NoGradGuard no_grad;
    auto from = mop->gate->parameters(), to = paper->gate->parameters();
    for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  }
  EXPECT_FALSE(prompted_forward(backbone, paper, batch).logits.allclose(reference, 0, 1e-3));
}

// With a one-hot gate on expert 2 the attention probabilities to every other expert's prompt
// columns are exactly zero, in every head of every layer >= L_mid, and those to expert 2 are not.
TEST(Gate, OneHotGateZeroesTheOtherExpertsAttention) {
  auto backbone = tiny_backbone();
  for (auto scale : {GateScale::kExperts, GateScale::kPaper}) {
    auto state = random_state(tiny_mop(PromptMethod::kMop, scale), 7);
    {
      torch::NoGradGuard no_grad;
      state->gate->w2->weight.zero_();
      state->gate->w2->bias.copy_(torch::tensor({0.0f, 0.0f, 1000.0f, 0.0f}));  // softmax: exactly one-hot
    }
    LayerRecorder recorder(true);
    const auto out = prompted_forward(backbone, state, make_batch(tiny_examples(4, 8), 0, 4), &recorder);
    EXPECT_TRUE(out.gate.select(1, 2).eq(1.0f).all().item<bool>());
    const int P = state->config().prompts_per_expert, L = tiny_config().n_layers;
    ASSERT_EQ(int(recorder.attentions.size()), L);
    for (int l = 0; l < L; ++l) {
      EXPECT_EQ(recorder.attentions[l].defined(), l >= state->config().mid_layer) << l;
      if (l < state->config().mid_layer) continue;
      const auto& probs = recorder.attentions[l];  // (B, H, S, Sk), columns [E * P prompts | tokens]
      auto others = torch::cat({probs.slice(3, 0, 2 * P), probs.slice(3, 3 * P, 4 * P)}, 3);
      EXPECT_TRUE(others.eq(0).all().item<bool>()) << gate_scale_name(scale) << " layer " << l;
      EXPECT_TRUE(probs.slice(3, 2 * P, 3 * P).gt(0).any().item<bool>()) << gate_scale_name(scale) << " layer " << l;
    }
  }
}

// Entropy in nats and experts above 0.1 of mass, per example, against a hand calculation:
// one-hot 0 and 1; uniform over 4: ln 4 and 4; (0.5, 0.45, 0.05, 0): -(0.5 ln 0.5 + 0.45 ln 0.45 + 0.05 ln 0.05) = 0.8556887 and 2.
TEST(Gate, EntropyAndExpertsUsedMatchAHandCalculation) {
  const auto gate = torch::tensor({{1.0, 0.0, 0.0, 0.0}, {0.25, 0.25, 0.25, 0.25}, {0.5, 0.45, 0.05, 0.0}},
                                  torch::kDouble);  // (3, 4)
  const auto entropy = gate_entropy(gate), used = experts_used(gate);
  EXPECT_DOUBLE_EQ(entropy[0].item<double>(), 0.0);
  EXPECT_NEAR(entropy[1].item<double>(), std::log(4.0), 1e-12);
  EXPECT_NEAR(entropy[2].item<double>(), 0.8556887, 1e-7);
  EXPECT_EQ(used[0].item<double>(), 1);
  EXPECT_EQ(used[1].item<double>(), 4);
  EXPECT_EQ(used[2].item<double>(), 2);
}

// The evaluation's per-task gate entropy and experts used are the means over each task's test
// examples of the per-example values, computed here from one prompted forward per example.
TEST(MopEvaluation, GateStatisticsPerTaskAreMeansOverTheTasksExamples) {
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kMop), 17);
  {
    torch::NoGradGuard no_grad;
    state->gate->w2->weight.mul_(20);  // gates far from uniform, so that the statistics differ per example
  }
  const auto examples = tiny_examples(10, 18);
  const std::vector<std::string> tasks = {"a", "b", "c", "d"};
  const auto evaluation = evaluate_prompted(backbone, state, examples, tasks, 3);
  std::vector<double> entropy(4, 0), used(4, 0), count(4, 0);
  for (const auto& e : examples) {
    torch::NoGradGuard no_grad;
    const auto gate = prompted_forward(backbone, state, make_batch({e}, 0, 1)).gate.to(torch::kDouble);  // (1, E)
    entropy[e.task] += gate_entropy(gate).item<double>();
    used[e.task] += experts_used(gate).item<double>();
    count[e.task] += 1;
  }
  for (int t = 0; t < 4; ++t) {
    EXPECT_NEAR(evaluation.gate_entropy_by_task[t].item<double>(), entropy[t] / count[t], 1e-6) << t;
    EXPECT_NEAR(evaluation.experts_used_by_task[t].item<double>(), used[t] / count[t], 1e-12) << t;
  }
  EXPECT_GT(evaluation.gate_entropy_by_task.max().item<double>(), evaluation.gate_entropy_by_task.min().item<double>());
  auto baseline = random_state(tiny_mop(PromptMethod::kPrompt), 17);
  EXPECT_FALSE(evaluate_prompted(backbone, baseline, examples, tasks, 3).gate_entropy_by_task.defined());
}

// The training loss classifies only the response positions: the same loss and gradients as the
// loss on the full logits.
TEST(MopGradients, TrainingLossEqualsTheLossOnAllLogits) {
  auto backbone = tiny_backbone();
  auto examples = tiny_examples(4, 11);
  examples[1].ids.resize(9);  // padded, with a shorter response
  const auto batch = make_batch(examples, 0, 4);
  std::vector<torch::Tensor> losses, grads;
  for (bool response_only : {false, true}) {
    auto state = random_state(tiny_mop(PromptMethod::kMop), 12);
    const auto lower = lower_half(backbone, state, batch.ids, batch.question_mask);
    auto loss = response_only ? upper_half_loss(backbone, state, lower, batch).loss
                              : response_loss(upper_half(backbone, state, lower, batch.tasks).logits, batch);
    loss.backward();
    losses.push_back(loss.detach());
    grads.push_back(torch::cat({state->mid_prompts.grad().flatten(), state->gate->w1->weight.grad().flatten()}));
  }
  EXPECT_NEAR(losses[1].item<double>(), losses[0].item<double>(), 1e-6);
  EXPECT_TRUE(grads[1].allclose(grads[0], 1e-4, 1e-7)) << (grads[1] - grads[0]).abs().max();
}

// d loss / d theta against central differences, in float64, for mid prompts and gate weights.
TEST(MopGradients, MatchFiniteDifferences) {
  auto backbone = tiny_backbone();
  backbone->to(torch::kFloat64);
  auto state = random_state(tiny_mop(PromptMethod::kMop, GateScale::kExperts), 9);
  state->to(torch::kFloat64);
  const auto batch = make_batch(tiny_examples(3, 10), 0, 3);
  auto loss_of = [&] { return response_loss(prompted_forward(backbone, state, batch).logits, batch); };
  auto loss = loss_of();
  loss.backward();
  double worst = 0;
  for (auto* parameter : {&state->mid_prompts, &state->gate->w1->weight, &state->gate->w2->bias}) {
    auto flat = parameter->view(-1);
    const auto grad = parameter->grad().view(-1);
    for (int64_t i = 0; i < flat.numel(); i += std::max<int64_t>(1, flat.numel() / 7)) {
      const double h = 1e-6, original = flat[i].item<double>();
      torch::NoGradGuard no_grad;
      flat[i].fill_(original + h);
      const double up = loss_of().item<double>();
      flat[i].fill_(original - h);
      const double down = loss_of().item<double>();
      flat[i].fill_(original);
      const double numeric = (up - down) / (2 * h), analytic = grad[i].item<double>();
      worst = std::max(worst, std::abs(numeric - analytic) / std::max(1e-6, std::abs(numeric)));
      EXPECT_NEAR(analytic, numeric, 1e-6 + 1e-5 * std::abs(numeric)) << i;
    }
  }
  std::printf("largest relative gradient difference: %.2e\n", worst);
}

// At the input of L_mid the mid prompts take P0's positions; above it P0 acts only through the
// token states.
TEST(MopForward, MidPromptsTakeOverThePromptPositionsAtLMid) {
  auto backbone = tiny_backbone();
  torch::NoGradGuard no_grad;
  auto state = random_state(tiny_mop(PromptMethod::kPrompt), 13), other = random_state(tiny_mop(PromptMethod::kPrompt), 13);
  other->first_prompts.normal_();
  const auto batch = make_batch(tiny_examples(2, 14), 0, 2);
  LayerRecorder seen(false), seen_other(false);
  const auto logits = prompted_forward(backbone, state, batch, &seen).logits;
  const auto other_logits = prompted_forward(backbone, other, batch, &seen_other).logits;
  const int mid = state->config().mid_layer, EP = state->config().mid_prompt_count();
  const auto& input = seen.inputs.at(mid);  // (B, E * P + T, C)
  ASSERT_EQ(input.sizes(), torch::IntArrayRef({2, EP + batch.ids.size(1), tiny_config().dim}));
  EXPECT_TRUE(input[1].slice(0, 0, EP).equal(state->mid_prompts));
  EXPECT_TRUE(seen_other.inputs.at(mid).slice(1, 0, EP).equal(input.slice(1, 0, EP)));
  EXPECT_FALSE(other_logits.allclose(logits, 0, 1e-4)) << "P0 must still act through the token states";
}

// --gate-layer l: the gate reads the question tokens' mean at the input of layer l (0: the token
// embeddings with P0 in front), checked against a recording of the backbone's layers; the states
// handed to L_mid are bit for bit the same whatever l (the lower half only runs in two calls).
TEST(MopForward, TheGateReadsTheInputOfTheGateLayer) {
  auto backbone = tiny_backbone();
  torch::NoGradGuard no_grad;
  const auto batch = make_batch(tiny_examples(3, 39), 0, 3);
  auto config = tiny_mop(PromptMethod::kMop);  // L_mid = 2 of 4 layers
  ASSERT_EQ(config.gate_layer, config.mid_layer);
  auto at_mid = random_state(config, 40);
  const auto reference = lower_half(backbone, at_mid, batch.ids, batch.question_mask);
  LayerRecorder seen(false);
  LayerRun run;
  run.prompt_columns = config.first_prompt_count;
  run.observer = &seen;
  const auto h = torch::cat({at_mid->first_prompts.unsqueeze(0).expand({3, -1, -1}), backbone->embed(batch.ids)}, 1);
  seen.inputs.push_back(h);  // the input of layer 0, which the backbone does not report before running it
  backbone->run_layers(h, 0, backbone->config().n_layers, run);
  std::vector<torch::Tensor> inputs;
  for (int layer : {0, 1, 2}) {
    config.gate_layer = layer;
    auto state = random_state(config, 40);
    const auto lower = lower_half(backbone, state, batch.ids, batch.question_mask);
    EXPECT_TRUE(lower.states.equal(reference.states)) << layer;
    const auto expected = question_mean(seen.inputs.at(layer).slice(1, config.first_prompt_count), batch.question_mask);
    EXPECT_TRUE(lower.gate_input.allclose(expected, 0, 1e-6)) << layer;
    inputs.push_back(lower.gate_input);
  }
  EXPECT_FALSE(inputs[0].allclose(inputs[2], 0, 1e-3));
  EXPECT_FALSE(inputs[1].allclose(inputs[2], 0, 1e-3));
  config.gate_layer = 3;
  EXPECT_NE(error_of([&] { config.resolved(tiny_config()); }).find("--gate-layer 3 is outside [0, 2]"), std::string::npos);
}

// Nothing below L_mid takes part in the backward pass: only the layers from L_mid on (on an
// unfrozen backbone) and the mid prompts get gradients; P0 and the embeddings none.
TEST(MopGradients, OnlyLayersFromLMidAndTheMidPromptsGetGradients) {
  ModelConfig untied = tiny_config();
  untied.tied_classifier = false;  // a tied classifier would rightly give the embedding a gradient
  Llama backbone(untied);
  backbone->init_weights(3);
  auto state = random_state(tiny_mop(PromptMethod::kPrompt), 15);
  state->first_prompts.set_requires_grad(true);
  const auto batch = make_batch(tiny_examples(2, 16), 0, 2);
  response_loss(prompted_forward(backbone, state, batch).logits, batch).backward();
  const int mid = state->config().mid_layer;
  for (auto& item : backbone->named_parameters()) {
    const std::string& name = item.key();
    bool below = name.rfind("tok_embeddings", 0) == 0;
    for (int l = 0; l < mid; ++l) below = below || name.rfind("layers." + std::to_string(l) + ".", 0) == 0;
    if (below) {
      EXPECT_FALSE(item.value().grad().defined()) << name << " got a gradient below L_mid";
    } else {
      ASSERT_TRUE(item.value().grad().defined()) << name;
      EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << name;
    }
  }
  EXPECT_FALSE(state->first_prompts.grad().defined());
  ASSERT_TRUE(state->mid_prompts.grad().defined());
  EXPECT_GT(state->mid_prompts.grad().abs().sum().item<double>(), 0.0);
}

TEST(MopGradients, LowerHalfHasNoGraph) {
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kMop), 11);
  const auto batch = make_batch(tiny_examples(2, 12), 0, 2);
  const auto lower = lower_half(backbone, state, batch.ids, batch.question_mask);
  EXPECT_FALSE(lower.states.requires_grad());
  EXPECT_FALSE(lower.gate_input.requires_grad());
}

TEST(MopTraining, AFewHundredStepsLowerTheLoss) {
  const std::vector<std::string> tasks = {"a", "b", "c", "d"};
  const auto train = tiny_examples(64, 13), test = tiny_examples(16, 14);
  for (auto method : {PromptMethod::kMop, PromptMethod::kPrompt}) {
    auto backbone = tiny_backbone();
    auto state = random_state(tiny_mop(method), 15);
    const double before = evaluate_prompted(backbone, state, test, tasks, 8).report.overall.perplexity;
    TrainOptions options;
    options.steps = 300;
    options.lr = 1e-2;
    options.batch_size = 4;
    options.eval_every = 100;
    NullObserver observer;
    const auto summary = train_prompts(backbone, state, train, test, tasks, options, observer);
    const double after = summary.final.report.overall.perplexity;
    std::printf("%s: test perplexity %.3f -> %.3f\n", method_name(method), before, after);
    EXPECT_LT(after, 0.95 * before) << method_name(method);
    EXPECT_EQ(observer.evaluations.size(), 3u);
    EXPECT_EQ(observer.losses.size(), 300u);
    EXPECT_EQ(summary.final.gate_by_task.defined(), method == PromptMethod::kMop);
  }
}

TEST(MopTraining, GatePretrainingLearnsTheTaskToExpertMap) {
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kMop), 16);
  TrainOptions options;
  options.steps = 200;
  options.lr = 1e-2;
  options.batch_size = 8;
  const double accuracy = pretrain_gate(backbone, state, tiny_examples(64, 17), options);
  EXPECT_GT(accuracy, 0.95);
  const auto gate_by_task = evaluate_prompted(backbone, state, tiny_examples(16, 18), {"a", "b", "c", "d"}, 8).gate_by_task;
  EXPECT_TRUE(gate_by_task.argmax(1).equal(torch::arange(4))) << gate_by_task;
}

TEST(MopTraining, GateLearningRateZeroKeepsTheGateAndTrainsThePrompts) {
  const auto train = tiny_examples(16, 22), test = tiny_examples(4, 23);
  for (double gate_lr : {0.0, 1e-2}) {
    auto backbone = tiny_backbone();
    auto state = random_state(tiny_mop(PromptMethod::kMop), 24);
    const auto gate_weight = state->gate->parameters()[0].detach().clone();
    const auto prompts = state->mid_prompts.detach().clone();
    TrainOptions options;
    options.steps = 5;
    options.lr = 1e-2;
    options.gate_lr = gate_lr;
    NullObserver observer;
    train_prompts(backbone, state, train, test, {"a", "b", "c", "d"}, options, observer);
    EXPECT_EQ(state->gate->parameters()[0].equal(gate_weight), gate_lr == 0) << gate_lr;
    EXPECT_FALSE(state->mid_prompts.equal(prompts)) << gate_lr;
  }
}

// --gate-temperature tau: the gate's output is softmax(logits / tau); tau = 1 is the paper's.
TEST(Gate, TemperatureDividesTheLogitsBeforeTheSoftmax) {
  auto backbone = tiny_backbone();
  torch::NoGradGuard no_grad;
  auto config = tiny_mop(PromptMethod::kMop);
  auto paper = random_state(config, 31);
  config.gate_temperature = 2.5;
  auto soft = random_state(config, 31);
  const auto batch = make_batch(tiny_examples(3, 32), 0, 3);
  const auto lower = lower_half(backbone, paper, batch.ids, batch.question_mask);
  const auto logits = paper->gate->logits(lower.gate_input);  // (B, E)
  EXPECT_TRUE(gate_output(paper, lower).allclose(torch::softmax(logits, -1), 0, 1e-7));
  EXPECT_TRUE(gate_output(soft, lower).allclose(torch::softmax(logits / 2.5, -1), 0, 1e-7));
  EXPECT_GT(gate_entropy(gate_output(soft, lower)).sum().item<double>(),
            gate_entropy(gate_output(paper, lower)).sum().item<double>());
}

// --gate-top-k k: the k largest logits of each example go through the softmax (at the temperature),
// the other experts get exactly 0; 0 and k = E are the dense gate. Logit noise joins the logits
// before the top k is taken. Checked against the logits by hand, with ranks from std::sort.
TEST(Gate, TopKKeepsTheLargestLogitsAndNoiseJoinsThemFirst) {
  auto backbone = tiny_backbone();
  torch::NoGradGuard no_grad;
  auto config = tiny_mop(PromptMethod::kMop);  // E = 4
  config.gate_temperature = 0.7;
  auto dense = random_state(config, 35);
  config.gate_top_k = 4;
  auto all = random_state(config, 35);
  config.gate_top_k = 2;
  auto top2 = random_state(config, 35);
  const auto batch = make_batch(tiny_examples(5, 36), 0, 5);
  const auto lower = lower_half(backbone, dense, batch.ids, batch.question_mask);
  const auto noise = torch::randn({5, 4}) * 3.0;
  EXPECT_TRUE(gate_output(all, lower).equal(gate_output(dense, lower)));
  for (bool noisy : {false, true}) {
    SCOPED_TRACE(noisy);
    auto z = top2->gate->logits(lower.gate_input).to(torch::kDouble);  // (B, E)
    if (noisy) z = z + noise.to(torch::kDouble);
    const auto gate = gate_output(top2, lower, noisy ? noise : torch::Tensor()).to(torch::kDouble);
    for (int64_t b = 0; b < 5; ++b) {
      std::vector<std::pair<double, int64_t>> ranked;
      for (int64_t e = 0; e < 4; ++e) ranked.emplace_back(z[b][e].item<double>(), e);
      std::sort(ranked.rbegin(), ranked.rend());
      const double first = ranked[0].first / 0.7, second = ranked[1].first / 0.7;
      const double top = 1.0 / (1.0 + std::exp(second - first));
      EXPECT_NEAR(gate[b][ranked[0].second].item<double>(), top, 1e-6);
      EXPECT_NEAR(gate[b][ranked[1].second].item<double>(), 1.0 - top, 1e-6);
      EXPECT_EQ(gate[b][ranked[2].second].item<double>(), 0.0);
      EXPECT_EQ(gate[b][ranked[3].second].item<double>(), 0.0);
    }
  }
  config.gate_top_k = 5;
  EXPECT_NE(error_of([&] { config.resolved(tiny_config()); }).find("--gate-top-k 5 is outside [0, 4]"), std::string::npos);
}

// --gate-route hash: each example's expert is stable_hash of its question ids (8 little-endian
// bytes each, seed 23) mod E, computed here from the examples' own fields, the same alone as in a
// padded batch; the experts are all used; and the forward is the one with a gate that is one-hot
// on that expert (checked example by example against a gate forced there by its bias).
TEST(Gate, HashRoutingSendsEachExampleWhollyToTheExpertOfItsQuestion) {
  auto backbone = tiny_backbone();
  torch::NoGradGuard no_grad;
  auto config = tiny_mop(PromptMethod::kMop);  // E = 4
  config.gate_route = GateRoute::kHash;
  auto hashed = random_state(config, 41);
  auto examples = tiny_examples(200, 42);
  for (size_t i = 0; i < examples.size(); ++i) examples[i].ids.resize(examples[i].ids.size() - i % 3);  // ragged
  const auto batch = make_batch(examples, 0, examples.size());
  const auto experts = hashed_experts(batch.ids, batch.question_mask, 4);  // (B)
  std::vector<int> load(4, 0);
  for (size_t i = 0; i < examples.size(); ++i) {
    std::string bytes;
    for (int64_t t = examples[i].question_begin; t < examples[i].question_end; ++t) {
      for (int k = 0; k < 8; ++k) bytes.push_back(char((uint64_t(examples[i].ids[t]) >> (8 * k)) & 0xff));
    }
    const auto expected = int64_t(stable_hash(bytes, 23) % 4);
    ASSERT_EQ(experts[int64_t(i)].item<int64_t>(), expected) << "example " << i;
    const auto alone = make_batch(examples, i, i + 1);
    EXPECT_EQ(hashed_experts(alone.ids, alone.question_mask, 4)[0].item<int64_t>(), expected);
    ++load[size_t(expected)];
  }
  for (int e = 0; e < 4; ++e) EXPECT_GT(load[size_t(e)], 30) << "expert " << e;  // 50 each if uniform
  config.gate_route = GateRoute::kGate;
  config.gate_top_k = 1;
  auto forced = random_state(config, 41);  // the same prompts
  for (size_t i = 0; i < 8; ++i) {
    const auto one = make_batch(examples, i, i + 1);
    const auto out = prompted_forward(backbone, hashed, one);
    const int64_t e = experts[int64_t(i)].item<int64_t>();
    EXPECT_TRUE(out.gate.equal(torch::one_hot(experts.slice(0, int64_t(i), int64_t(i) + 1), 4).to(torch::kFloat)));
    forced->gate->w2->weight.zero_();
    forced->gate->w2->bias.zero_();
    forced->gate->w2->bias[e] = 1.0f;  // top-1: exactly one-hot on e
    EXPECT_TRUE(out.logits.equal(prompted_forward(backbone, forced, one).logits)) << "example " << i;
  }
}

// --gate-route knn (issue 18): fit_task_centroids gives each task's mean gate input (recomputed
// here) and how many training examples lie nearest their own task's centroid; the main loop routes
// by the task, evaluation one-hot on the nearest centroid (found here by a loop over squared
// distances); the gate is no trained tensor.
TEST(Gate, KnnRoutingTakesTheTaskInTrainingAndTheNearestCentroidAtTest) {
  auto backbone = tiny_backbone();
  auto config = tiny_mop(PromptMethod::kMop);  // E = 4, T = 4
  config.gate_route = GateRoute::kKnn;
  auto state = random_state(config, 44);
  EXPECT_EQ(state->trained().size(), 1u);  // the mid prompts
  const auto examples = tiny_examples(40, 45);
  TrainOptions options;
  options.eval_batch_size = 7;
  const double accuracy = fit_task_centroids(backbone, state, examples, options);
  torch::NoGradGuard no_grad;
  const auto batch = make_batch(examples, 0, examples.size());
  const auto lower = lower_half(backbone, state, batch.ids, batch.question_mask);
  const auto x = lower.gate_input.to(torch::kDouble);  // (40, C)
  int nearest_own = 0;
  std::vector<int64_t> nearest(examples.size());
  for (int64_t t = 0; t < 4; ++t) {
    auto sum = torch::zeros({x.size(1)}, torch::kDouble);
    for (size_t i = 0; i < examples.size(); ++i) {
      if (examples[i].task == t) sum += x[int64_t(i)];
    }
    EXPECT_TRUE(state->task_centroids[t].to(torch::kDouble).allclose(sum / 10, 0, 1e-5)) << "task " << t;
  }
  for (size_t i = 0; i < examples.size(); ++i) {
    double best = 1e300;
    for (int64_t t = 0; t < 4; ++t) {
      const double d = (x[int64_t(i)] - state->task_centroids[t].to(torch::kDouble)).pow(2).sum().item<double>();
      if (d < best) best = d, nearest[i] = t;
    }
    nearest_own += nearest[i] == examples[i].task;
  }
  EXPECT_DOUBLE_EQ(accuracy, nearest_own / 40.0);
  const auto at_test = gate_output(state, lower);
  const auto in_training = gate_output(state, lower, {}, &batch.tasks);
  for (size_t i = 0; i < examples.size(); ++i) {
    EXPECT_EQ(at_test[int64_t(i)].argmax().item<int64_t>(), nearest[i]) << "example " << i;
    EXPECT_EQ(in_training[int64_t(i)].argmax().item<int64_t>(), examples[i].task) << "example " << i;
  }
  EXPECT_TRUE((at_test.sum(1) == 1).all().item<bool>() && (at_test.amax(1) == 1).all().item<bool>());
}

// Under hash routing the gate takes no part: a training step moves the mid prompts and leaves every
// gate weight as it was (the same settings routed by the gate move it).
TEST(MopTraining, HashRoutingLeavesTheGateAsItWas) {
  const auto train = tiny_examples(8, 43);
  for (auto route : {GateRoute::kHash, GateRoute::kGate}) {
    auto backbone = tiny_backbone();
    auto config = tiny_mop(PromptMethod::kMop);
    config.gate_route = route;
    auto state = random_state(config, 44);
    const auto gate = state->gate->w1->weight.detach().clone();
    const auto prompts = state->mid_prompts.detach().clone();
    TrainOptions options;
    options.steps = 2;
    options.batch_size = 4;
    options.lr = 1e-2;
    train_local(backbone, state, train, options);
    EXPECT_EQ(state->gate->w1->weight.equal(gate), route == GateRoute::kHash) << gate_route_name(route);
    EXPECT_FALSE(state->mid_prompts.equal(prompts)) << gate_route_name(route);
  }
}

// --gate-noise: the main loop's noise comes from one seeded stream (the same run twice is the same
// run), changes what the gate learns, and is never drawn without MoPs' gate or at scale 0.
TEST(MopTraining, GateNoiseIsSeededAndChangesTheTraining) {
  const auto train = tiny_examples(8, 37);
  std::vector<PromptState> states;
  for (double scale : {0.0, 2.0, 2.0}) {
    auto backbone = tiny_backbone();
    auto config = tiny_mop(PromptMethod::kMop);
    config.gate_top_k = 2;
    auto state = random_state(config, 38);
    TrainOptions options;
    options.steps = 3;
    options.batch_size = 4;
    options.lr = 1e-2;
    options.gate_noise = scale;
    train_local(backbone, state, train, options);
    states.push_back(state);
  }
  EXPECT_TRUE(states[2]->gate->w1->weight.equal(states[1]->gate->w1->weight));
  EXPECT_TRUE(states[2]->mid_prompts.equal(states[1]->mid_prompts));
  EXPECT_FALSE(states[1]->gate->w1->weight.equal(states[0]->gate->w1->weight));
}

// SMoP's term by hand: loads (2, 0): mean 1, sample variance 2, so 2; equal loads: 0.
TEST(Gate, LoadBalanceLossIsTheSquaredCoefficientOfVariationOfTheLoad) {
  EXPECT_NEAR(load_balance_loss(torch::tensor({{1.0, 0.0}, {1.0, 0.0}}, torch::kDouble)).item<double>(), 2.0, 1e-9);
  EXPECT_NEAR(load_balance_loss(torch::tensor({{0.9, 0.1}, {0.1, 0.9}}, torch::kDouble)).item<double>(), 0.0, 1e-9);
  // loads (1.2, 0.5, 0.3): mean 2/3, sample variance 0.22333..., / (4/9) = 0.5025
  const auto three = torch::tensor({{0.7, 0.2, 0.1}, {0.5, 0.3, 0.2}}, torch::kDouble);
  EXPECT_NEAR(load_balance_loss(three).item<double>(), 0.5025, 1e-9);
}

// --gate-balance adds the term to the gradient only: the reported loss and the mid prompts after
// a step are the same (the term depends on the gate alone), the gate moves differently; 0 is
// exactly the plain loop.
TEST(MopTraining, GateBalanceActsOnTheGateOnly) {
  const auto train = tiny_examples(8, 33);
  std::vector<PromptState> states;
  std::vector<double> losses;
  for (double balance : {0.0, 0.0, 1.0}) {
    auto backbone = tiny_backbone();
    auto state = random_state(tiny_mop(PromptMethod::kMop), 34);
    TrainOptions options;
    options.steps = 1;
    options.batch_size = 4;
    options.lr = 1e-2;
    options.gate_balance = balance;
    losses.push_back(train_local(backbone, state, train, options).mean_loss);
    states.push_back(state);
  }
  EXPECT_EQ(losses[2], losses[0]);
  EXPECT_TRUE(states[1]->gate->w1->weight.equal(states[0]->gate->w1->weight));
  EXPECT_TRUE(states[2]->mid_prompts.equal(states[0]->mid_prompts));
  EXPECT_FALSE(states[2]->gate->w1->weight.equal(states[0]->gate->w1->weight));
}

TEST(MopTraining, NonFiniteLossStopsBeforeChangingTheState) {
  auto backbone = tiny_backbone();
  {
    torch::NoGradGuard no_grad;
    backbone->norm->weight[0] = std::numeric_limits<float>::quiet_NaN();
  }
  auto state = random_state(tiny_mop(PromptMethod::kMop), 19);
  const auto prompts = state->mid_prompts.detach().clone();
  NullObserver observer;
  TrainOptions options;
  options.steps = 5;
  const auto message = error_of([&] {
    train_prompts(backbone, state, tiny_examples(8, 20), tiny_examples(4, 21), {"a", "b", "c", "d"}, options, observer);
  });
  EXPECT_NE(message.find("at step 1; training stopped"), std::string::npos) << message;
  EXPECT_TRUE(state->mid_prompts.equal(prompts));
}

TEST(MopConfig, ImpossibleSettingsAreClearErrors) {
  auto config = tiny_mop(PromptMethod::kMop);
  config.mid_layer = 4;
  EXPECT_NE(error_of([&] { config.resolved(tiny_config()); }).find("--mid-layer 4 is outside [1, 3]"), std::string::npos);
  config.mid_layer = 0;
  EXPECT_NE(error_of([&] { config.resolved(tiny_config()); }).find("outside [1, 3]"), std::string::npos);
  auto examples = tiny_examples(2, 22);
  examples[1].question_end = examples[1].question_begin;  // no question tokens
  auto backbone = tiny_backbone();
  auto state = random_state(tiny_mop(PromptMethod::kMop), 23);
  EXPECT_NE(error_of([&] { prompted_forward(backbone, state, make_batch(examples, 0, 2)); }).find("no question tokens"),
            std::string::npos);
}

TEST(MopState, RoundTripsThroughAResultsFileAndChecksShapes) {
  const auto dir = fresh_test_dir("mop");
  auto config = tiny_mop(PromptMethod::kMop, GateScale::kPaper);
  config.gate_top_k = 3;
  config.gate_temperature = 0.5;
  config.gate_layer = 1;
  config.gate_route = GateRoute::kHash;
  auto state = random_state(config, 24);
  ResultsHeader header;
  header.method = "mop";
  header.mode = "centralized";
  header.tasks = {"a", "b", "c", "d"};
  header.experts = 4;
  header.prompts_per_expert = 2;
  const auto path = (dir / "r.h5").string();
  {
    ResultsFile results(path, header);
    write_prompt_state(results, state);
  }
  auto loaded = read_prompt_state(path, tiny_config());
  EXPECT_EQ(loaded->config().gate_scale, GateScale::kPaper);
  EXPECT_EQ(loaded->config().gate_top_k, 3);
  EXPECT_EQ(loaded->config().gate_layer, 1);
  EXPECT_EQ(loaded->config().gate_temperature, 0.5);
  EXPECT_EQ(loaded->config().gate_route, GateRoute::kHash);
  for (const auto& item : state->named_parameters()) {
    EXPECT_TRUE(loaded->named_parameters()[item.key()].equal(item.value())) << item.key();
  }
  auto wider = tiny_config();
  wider.dim = 32;
  EXPECT_NE(error_of([&] { read_prompt_state(path, wider); }).find("imply"), std::string::npos);
}

}  // namespace
}  // namespace mops

namespace mops {
namespace {

// `mops train --method both` on the embedded base model: two results files with the schema.
TEST(MopsTrain, BothMethodsWriteResultsFilesWithTheSchema) {
  const auto dir = fresh_test_dir("mop");
  const auto out = (dir / "run.h5").string();
  const auto run = run_mops("train --method both --model " MOPS_SOURCE_DIR "/models/skills7-base.safetensors --tokenizer "
                            MOPS_SOURCE_DIR "/models/skills7-tokenizer.model --data skills7 --skills7-per-task 30 "
                            "--steps 12 --eval-every 6 --p0-steps 2 --gate-pretrain-steps 5 --experts 7 "
                            "--prompts-per-expert 2 --threads 1 --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("Gain (%)"), std::string::npos) << run.output;
  for (const char* method : {"mop", "prompt"}) {
    const auto path = (dir / (std::string("run.") + method + ".h5")).string();
    const auto check = h5py_check(path);
    EXPECT_EQ(check.exit_code, 0) << check.output;
    std::vector<int64_t> shape;
    read_dataset(path, "/eval/ppl", &shape);
    EXPECT_EQ(shape, (std::vector<int64_t>{2, 7})) << method;
    EXPECT_EQ(read_dataset(path, "/train/loss").size(), 12u) << method;
    EXPECT_EQ(read_string_attribute(path, "status"), "finished");
    EXPECT_EQ(read_string_attribute(path, "compression"), R"({"method":"none"})");
    auto state = read_prompt_state(path, load_model(MOPS_SOURCE_DIR "/models/skills7-base.safetensors").model->config());
    EXPECT_EQ(state->mid_prompts.size(0), 14) << method;
  }
  std::vector<int64_t> gate_shape;
  read_dataset((dir / "run.mop.h5").string(), "/gate/by_task", &gate_shape);
  EXPECT_EQ(gate_shape, (std::vector<int64_t>{2, 7, 7}));

  const std::string generate = "generate --model " MOPS_SOURCE_DIR "/models/skills7-base.safetensors --tokenizer "
                               MOPS_SOURCE_DIR "/models/skills7-tokenizer.model --greedy --threads 1 --prompts " +
                               (dir / "run.mop.h5").string();
  const auto answer = run_mops(generate + " --instruction 'Reverse the list.' --input '3, 1, 2'");
  EXPECT_EQ(answer.exit_code, 0) << answer.output;
  const auto no_instruction = run_mops(generate + " --prompt 'Once'");
  EXPECT_EQ(no_instruction.exit_code, 2);
  EXPECT_NE(no_instruction.output.find("--prompts needs --instruction"), std::string::npos) << no_instruction.output;
}

// --lora-layers all: LoRA's parameters in all 4 layers of the embedded model, in the results
// file's prompt_config too.
TEST(MopsTrain, LoraInAllLayersCountsEveryLayersAdapters) {
  const auto out = (fresh_test_dir("lora-all") / "lora.h5").string();
  const auto run = run_mops("train --method lora --lora-layers all --lora-rank 4 --model " MOPS_SOURCE_DIR
                            "/models/skills7-base.safetensors --tokenizer " MOPS_SOURCE_DIR
                            "/models/skills7-tokenizer.model --data skills7 --skills7-per-task 30 --steps 4 "
                            "--eval-every 4 --p0-steps 2 --threads 1 --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(read_string_attribute(out, "trainable_parameters"), std::to_string(4 * (4 * (128 + 128) + 4 * (128 + 64))));
  EXPECT_NE(read_string_attribute(out, "prompt_config").find(R"("lora_layers":"all")"), std::string::npos);
}

// `mops train --method lora | ia3 | prefix | mpt`: a results file with the schema, the method, its
// trainable parameters counted by hand (embedded model: d 128, G D 64, F hidden, layers 2 and 3 >=
// L_mid, 7 tasks), and a state that `mops generate --prompts` reads (MPT's with --task).
TEST(MopsTrain, PeerMethodsWriteResultsFilesWithTheirTrainableParameters) {
  const auto dir = fresh_test_dir("adapters");
  const auto model = MOPS_SOURCE_DIR "/models/skills7-base.safetensors";
  const int64_t F = load_model(model).model->config().hidden_dim;
  const std::map<std::string, int64_t> expected = {{"lora", 2 * (4 * (128 + 128) + 4 * (128 + 64))},
                                                   {"ia3", 2 * (64 + 64 + F)},
                                                   {"prefix", 2 * 2 * 70 * 64},  // E x P = 70 keys and values
                                                   {"mpt", 70 * 128 + 7 * (70 + 128)}};
  for (const auto& [method, count] : expected) {
    const auto out = (dir / (method + ".h5")).string();
    const auto run = run_mops("train --method " + method + " --model " + model + " --tokenizer " MOPS_SOURCE_DIR
                              "/models/skills7-tokenizer.model --data skills7 --skills7-per-task 30 --steps 6 "
                              "--eval-every 6 --p0-steps 2 --lora-rank 4 --threads 1 --out " + out);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_NE(run.output.find(method + ": " + std::to_string(count) + " trainable parameters"), std::string::npos)
        << run.output;
    EXPECT_NE(run.output.find(peer_column_label(method)), std::string::npos) << run.output;
    const auto check = h5py_check(out);
    EXPECT_EQ(check.exit_code, 0) << check.output;
    EXPECT_EQ(read_string_attribute(out, "method"), method);
    EXPECT_EQ(read_string_attribute(out, "trainable_parameters"), std::to_string(count));
    const auto generate = "generate --model " + std::string(model) + " --tokenizer " MOPS_SOURCE_DIR
                          "/models/skills7-tokenizer.model --greedy --threads 1 --prompts " + out +
                          " --instruction 'Reverse the list.' --input '3, 1, 2'";
    const auto task = " --task " + read_strings(out, "tasks").at(1);
    const auto answer = run_mops(generate + (method == "mpt" ? task : ""));
    EXPECT_EQ(answer.exit_code, 0) << answer.output;
    const auto wrong = run_mops(generate + (method == "mpt" ? "" : task));
    EXPECT_EQ(wrong.exit_code, 2) << wrong.output;
    EXPECT_NE(wrong.output.find(method == "mpt" ? "name the task with --task" : "--task is for the prompts of a --method mpt run"),
              std::string::npos) << wrong.output;
  }
}

}  // namespace
}  // namespace mops

namespace mops {
namespace {

// Generation goes through the same halves as training and evaluation: the decoder's prefill and
// then one token at a time give the prompted forward's logits (and gate) on the whole sequence,
// for both methods.
TEST(MopGeneration, DecoderGivesTheLogitsOfThePromptedForward) {
  auto backbone = tiny_backbone();
  torch::NoGradGuard no_grad;
  auto lora_all_layers = tiny_mop(PromptMethod::kLora);
  lora_all_layers.lora_all_layers = true;
  std::vector<MopConfig> configs = {lora_all_layers.resolved(tiny_config())};
  for (auto method : prompt_methods()) configs.push_back(tiny_mop(method));
  for (const auto& config : configs) {
    const auto method = config.method;
    auto state = random_state(config, 25);
    for (auto& t : state->adapter_tensors()) t.add_(torch::randn_like(t) * 0.3);  // away from their identity start
    if (method == PromptMethod::kMpt) state->task_rows.normal_();                  // and MPT's from the baseline
    auto whole = tiny_examples(3, 26)[2];  // task 2
    auto prompt = whole;
    prompt.ids.resize(prompt.response_begin);
    PromptedDecoder decoder(backbone, state, prompt);
    std::vector<torch::Tensor> ours{decoder.prefill()};  // (V) each
    for (size_t t = prompt.ids.size(); t + 1 < whole.ids.size(); ++t) ours.push_back(decoder.step(whole.ids[t]));
    const auto reference = prompted_forward(backbone, state, make_batch({whole}, 0, 1));
    const auto expected = reference.logits[0].slice(0, int64_t(prompt.ids.size()) - 1, int64_t(whole.ids.size()) - 1);
    const auto got = torch::stack(ours);  // (T - T_prompt, V)
    EXPECT_TRUE(got.allclose(expected, 0, 1e-4)) << method_name(method) << " " << (got - expected).abs().max();
    if (method == PromptMethod::kMop) {
      EXPECT_TRUE(decoder.gate().allclose(reference.gate, 0, 1e-6));
    }
    const auto& c = state->config();
    EXPECT_EQ(decoder.prompt_length(), std::max(c.first_prompt_count, c.upper_prompt_count()) + int64_t(prompt.ids.size()));
  }
}

}  // namespace
}  // namespace mops
