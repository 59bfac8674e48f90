// Training a small decoder from scratch on packed token streams: AdamW, linear warm-up then
// cosine decay, gradient clipping, periodic held-out evaluation and checkpoints.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "llama.h"
#include "token_streams.h"

namespace mops {

struct PretrainOptions {
  int steps = 1000;
  int batch_size = 16;
  int seq_len = 128;
  double lr = 1e-3;
  double min_lr = 1e-4;
  int warmup_steps = 50;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  int eval_every = 100;
  int eval_batches = 8;
  int checkpoint_every = 0;  // 0 = only at the end
  uint64_t seed = 0;
  std::string out;           // checkpoint path (project format)
  std::map<std::string, std::string> metadata;  // stored with every checkpoint
};

struct PretrainReport {
  int steps = 0;
  int64_t tokens = 0;
  double seconds = 0;
  double final_train_loss = 0;  // mean over the last eval interval
  double test_loss = 0;         // at the end
};

// Learning rate at `step` (0-based) under warm-up + cosine decay.
double learning_rate(const PretrainOptions& options, int step);

// Mean next-token cross-entropy over the target tokens of fixed windows of `stream`.
double evaluate_stream(Llama& model, const std::vector<int64_t>& stream, const std::vector<uint8_t>& targets,
                       int seq_len, int batch_size, int max_batches);

PretrainReport pretrain(Llama& model, const TokenStreams& data, const PretrainOptions& options,
                        std::ostream& log);

}  // namespace mops
