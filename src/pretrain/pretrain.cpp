#include "pretrain.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "checkpoint.h"
#include "errors.h"
#include "progress.h"

namespace mops {
namespace {

// Windows of seq_len + 1 ids starting at `offsets`.
struct Windows {
  torch::Tensor inputs;   // (B, T) ids
  torch::Tensor targets;  // (B, T) the next ids
  torch::Tensor weights;  // (B, T) 1 where the next id is a loss target
};

Windows windows(const std::vector<int64_t>& stream, const std::vector<uint8_t>& is_target,
                const std::vector<int64_t>& offsets, int seq_len) {
  const int64_t B = int64_t(offsets.size());
  auto batch = torch::empty({B, seq_len + 1}, torch::kLong);
  auto weights = torch::empty({B, seq_len}, torch::kFloat32);
  auto a = batch.accessor<int64_t, 2>();
  auto w = weights.accessor<float, 2>();
  for (int64_t b = 0; b < B; ++b) {
    for (int t = 0; t <= seq_len; ++t) a[b][t] = stream[offsets[b] + t];
    for (int t = 0; t < seq_len; ++t) w[b][t] = is_target[offsets[b] + t + 1];
  }
  return {batch.slice(1, 0, seq_len), batch.slice(1, 1, seq_len + 1), weights};
}

// Mean cross-entropy over the target positions of the windows.
torch::Tensor next_token_loss(Llama& model, const Windows& w) {
  auto logits = model->forward(w.inputs);  // (B, T, V), on the model's device
  auto nll = torch::nn::functional::cross_entropy(
      logits.flatten(0, 1), w.targets.to(logits.device()).flatten(),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));  // (B*T)
  auto weights = w.weights.to(logits.device()).flatten();
  return (nll * weights).sum() / weights.sum().clamp_min(1.0);
}

void check_options(const TokenStreams& data, const PretrainOptions& o, int max_seq_len) {
  MOPS_CHECK(o.steps > 0, "--steps = " << o.steps << " must be positive");
  MOPS_CHECK(o.batch_size > 0, "--batch-size = " << o.batch_size << " must be positive");
  MOPS_CHECK(o.seq_len > 1 && o.seq_len <= max_seq_len,
             "--seq-len = " << o.seq_len << " is outside [2, " << max_seq_len << "] (the model's max_seq_len)");
  MOPS_CHECK(int64_t(data.train.size()) > o.seq_len + 1,
             "the training corpus has " << data.train.size() << " tokens, fewer than one window of --seq-len "
                                        << o.seq_len << " + 1: add text or lower --seq-len");
  MOPS_CHECK(data.train_targets.size() == data.train.size() && data.test_targets.size() == data.test.size(),
             "token streams and their target masks differ in length");
  MOPS_CHECK(o.lr > 0 && o.min_lr >= 0 && o.min_lr <= o.lr,
             "learning rates must satisfy 0 <= --min-lr <= --lr and --lr > 0");
  MOPS_CHECK(o.warmup_steps >= 0 && o.grad_clip > 0 && o.weight_decay >= 0,
             "--warmup-steps and --weight-decay must be >= 0 and --grad-clip > 0");
  MOPS_CHECK(o.eval_every > 0, "--eval-every = " << o.eval_every << " must be positive");
  MOPS_CHECK(!o.out.empty(), "--out is required: where the checkpoint goes");
}

torch::optim::AdamW make_optimizer(Llama& model, const PretrainOptions& o) {
  std::vector<torch::Tensor> decayed, plain;  // matrices decay; norm gains do not
  for (auto& p : model->parameters()) (p.dim() >= 2 ? decayed : plain).push_back(p);
  auto options = torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95});
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(options).weight_decay(o.weight_decay)));
  groups.emplace_back(plain, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(options).weight_decay(0.0)));
  return torch::optim::AdamW(std::move(groups), options);
}

void save_checkpoint(Llama& model, const PretrainOptions& o, int step, double test_loss) {
  auto metadata = o.metadata;
  metadata["pretrain_step"] = std::to_string(step);
  metadata["pretrain_test_loss"] = std::to_string(test_loss);
  save_model(model, o.out, metadata);
}

}  // namespace

double learning_rate(const PretrainOptions& o, int step) {
  if (step < o.warmup_steps) return o.lr * (step + 1) / o.warmup_steps;
  const double span = std::max(1, o.steps - o.warmup_steps);
  const double progress = std::min(1.0, (step - o.warmup_steps) / span);
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(M_PI * progress));
}

double evaluate_stream(Llama& model, const std::vector<int64_t>& stream, const std::vector<uint8_t>& targets,
                       int seq_len, int batch_size, int max_batches) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> offsets;
  for (int64_t o = 0; o + seq_len + 1 <= int64_t(stream.size()) &&
                      int64_t(offsets.size()) < int64_t(batch_size) * max_batches;
       o += seq_len) {
    offsets.push_back(o);
  }
  MOPS_CHECK(!offsets.empty(), "the evaluation stream has " << stream.size()
                                                            << " tokens, fewer than one window of " << seq_len + 1);
  double total = 0;
  for (size_t begin = 0; begin < offsets.size(); begin += batch_size) {
    std::vector<int64_t> chunk(offsets.begin() + begin,
                               offsets.begin() + std::min(offsets.size(), begin + batch_size));
    total += next_token_loss(model, windows(stream, targets, chunk, seq_len)).item<double>() * chunk.size();
  }
  return total / offsets.size();
}

PretrainReport pretrain(Llama& model, const TokenStreams& data, const PretrainOptions& o, std::ostream& log) {
  check_options(data, o, model->config().max_seq_len);
  const bool has_test = int64_t(data.test.size()) > o.seq_len + 1;
  const auto& eval_stream = has_test ? data.test : data.train;
  const auto& eval_targets = has_test ? data.test_targets : data.train_targets;
  if (!has_test) log << "note: the held-out split is shorter than one window; evaluating on training data\n";
  model->train();
  auto optimizer = make_optimizer(model, o);
  auto generator = at::detail::createCPUGenerator(o.seed);
  const int64_t max_offset = int64_t(data.train.size()) - o.seq_len - 1;
  PretrainReport report;
  Progress progress("pretrain", o.steps, "steps", log);
  double interval_loss = 0;
  int interval_steps = 0;
  for (int step = 0; step < o.steps; ++step) {
    const double lr = learning_rate(o, step);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    auto offsets_tensor = torch::randint(0, max_offset + 1, {o.batch_size}, generator, torch::kLong);
    std::vector<int64_t> offsets(offsets_tensor.data_ptr<int64_t>(), offsets_tensor.data_ptr<int64_t>() + o.batch_size);
    optimizer.zero_grad();
    auto loss = next_token_loss(model, windows(data.train, data.train_targets, offsets, o.seq_len));
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model->parameters(), o.grad_clip);
    optimizer.step();
    const double loss_value = loss.item<double>();
    MOPS_CHECK(std::isfinite(loss_value), "pretraining loss became " << loss_value << " at step " << step + 1
                                              << "; lower --lr (the last checkpoint is kept)");
    interval_loss += loss_value;
    ++interval_steps;
    report.tokens += int64_t(o.batch_size) * o.seq_len;
    const int done = step + 1;
    std::ostringstream fields;
    fields << std::fixed << std::setprecision(3) << "loss " << loss_value << " | lr " << std::scientific
           << std::setprecision(2) << lr << " | " << std::fixed << std::setprecision(0)
           << report.tokens / std::max(1e-9, progress.elapsed_seconds()) << " tok/s";
    progress.update(done, fields.str());
    if (done % o.eval_every == 0 || done == o.steps) {
      model->eval();
      report.test_loss = evaluate_stream(model, eval_stream, eval_targets, o.seq_len, o.batch_size, o.eval_batches);
      model->train();
      report.final_train_loss = interval_loss / interval_steps;
      log << "step " << done << ": train loss " << std::setprecision(4) << report.final_train_loss
          << ", held-out loss " << report.test_loss << " (perplexity " << std::exp(report.test_loss) << ")\n";
      interval_loss = 0;
      interval_steps = 0;
    }
    if ((o.checkpoint_every > 0 && done % o.checkpoint_every == 0) || done == o.steps) {
      save_checkpoint(model, o, done, report.test_loss);
    }
  }
  progress.finish();
  model->eval();
  report.steps = o.steps;
  report.seconds = progress.elapsed_seconds();
  return report;
}

}  // namespace mops
