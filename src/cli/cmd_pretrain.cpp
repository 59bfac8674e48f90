// `mops pretrain`: a small Llama decoder from scratch on a text corpus, packed sequences.
#include <cmath>
#include <iomanip>
#include <iostream>
#include <limits>

#include "checkpoint.h"
#include "command_start.h"
#include "commands.h"
#include "dataset_options.h"
#include "evaluation.h"
#include "output_files.h"
#include "pretrain.h"
#include "progress.h"
#include "token_streams.h"
#include "tokenizer.h"

namespace mops {
namespace {

void add_options(CommandLine& cl) {
  cl.options().add_options()
      ("corpus", po::value<std::vector<std::string>>()->multitoken()->value_name("FILE..."),
       "plain training text: *.jsonl (one JSON object per line) or text files (documents separated by blank lines)")
      ("fields", po::value<std::vector<std::string>>()->multitoken()->default_value({"text"}, "text")->value_name("NAME..."),
       "--corpus JSONL: string fields that hold the text, joined by newlines")
      ("tokenizer", po::value<std::string>()->required()->value_name("FILE"), "SentencePiece .model (mops tokenizer train)")
      ("out", po::value<std::string>()->required()->value_name("FILE"),
       "checkpoint to write (.safetensors), also during training; never replaced without --overwrite")
      ("init", po::value<std::string>()->value_name("MODEL"), "continue from this checkpoint instead of random weights");
  constexpr int kMaxInt = std::numeric_limits<int>::max();
  cl.add_number<int>("dim", 128, Range::closed(8, 1 << 14), "model width C");
  cl.add_number<int>("layers", 4, Range::closed(1, 256), "decoder layers L");
  cl.add_number<int>("heads", 4, Range::closed(1, 1024), "query heads H (divides C)");
  cl.add_number<int>("kv-heads", 2, Range::closed(1, 1024), "key/value heads G (divides H)");
  cl.add_number<int>("hidden", 0, Range::closed(0, 1 << 18), "SwiGLU width F; 0 = Llama's 8C/3 rounded up to 32");
  cl.add_number<int>("max-seq-len", 512, Range::closed(2, 1 << 20),
                     "context the model is built for (prompt positions included)");
  cl.add_number<int>("seq-len", 128, Range::closed(1, 1 << 20), "training window length (at most --max-seq-len)");
  cl.add_number<int>("batch-size", 16, Range::closed(1, 4096), "windows per step");
  cl.add_number<int>("steps", 1000, Range::closed(1, kMaxInt), "optimizer steps");
  cl.add_number<double>("lr", 1e-3, Range::open_closed(0, 10), "peak learning rate (AdamW)");
  cl.add_number<double>("min-lr", 1e-4, Range::closed(0, 10), "learning rate at the end of the cosine decay (<= --lr)");
  cl.add_number<int>("warmup-steps", 50, Range::closed(0, kMaxInt), "linear warm-up steps");
  cl.add_number<double>("weight-decay", 0.1, Range::closed(0, 10), "AdamW weight decay on matrices");
  cl.add_number<double>("grad-clip", 1.0, Range::above(0), "clip the gradient norm to this");
  cl.add_number<int>("eval-every", 100, Range::closed(1, kMaxInt), "held-out evaluation every N steps");
  cl.add_number<int>("eval-batches", 8, Range::closed(1, 1 << 20), "held-out batches per evaluation");
  cl.add_number<int>("checkpoint-every", 0, Range::closed(0, kMaxInt), "write --out every N steps (0: at the end only)");
  cl.add_choice("loss-on", "all", {"all", "responses"},
                "with --data: all tokens or only the responses of instruction examples are loss targets (the "
                "sequences are packed either way)");
  cl.add_number<int>("exact-match-per-task", 50, Range::closed(0, kMaxInt),
                     "with --data: test examples per task answered greedily for exact-match accuracy at the end");
  add_dataset_options(cl, false);
  cl.add_threads_option();
  cl.add_device_options(false);  // the weights train: float32
  cl.add_seed_option();
  cl.add_overwrite_option();
}


TokenStreams corpus_streams(const CommandLine& cl, const Tokenizer& tokenizer) {
  const auto corpus = read_corpus_option(cl, "corpus");
  std::cerr << "corpus: " << corpus.documents.size() << " documents\n";
  return build_token_streams(corpus.documents, tokenizer, cl.get<double>("test-fraction"), cl.seed());
}

// Per-task test perplexity over response tokens and exact match of greedy answers.
void print_task_metrics(Llama& model, const Tokenizer& tokenizer, const InstructionDataset& dataset,
                        const TokenizedSplit& examples, size_t exact_match_per_task) {
  const auto report = evaluate_test_split(model, tokenizer, dataset, examples.test, 16, exact_match_per_task, 64);
  std::cout << "\ntest split, per task (a uniform model has perplexity " << model->config().vocab_size << ")\n"
            << format_report(report);
}

ModelConfig model_config(const CommandLine& cl, int vocab_size) {
  ModelConfig c;
  c.dim = cl.get<int>("dim");
  c.n_layers = cl.get<int>("layers");
  c.n_heads = cl.get<int>("heads");
  c.n_kv_heads = cl.get_int_in("kv-heads", 1, c.n_heads);
  c.hidden_dim = cl.get<int>("hidden") > 0 ? cl.get<int>("hidden") : llama_hidden_dim(c.dim, 32);
  c.vocab_size = vocab_size;
  c.max_seq_len = cl.get<int>("max-seq-len");
  c.tied_classifier = true;
  c.validate("pretrain options (--dim/--heads/--kv-heads)");
  return c;
}

// What the model options allow together (each is range-checked when parsed).
void validate_pretrain_options(const CommandLine& cl) {
  cl.require(cl.has("corpus") || has_data(cl), "give training text with --corpus FILE... and/or --data SOURCE...");
  cl.require(cl.get<int>("seq-len") <= cl.get<int>("max-seq-len"),
             "--seq-len " + std::to_string(cl.get<int>("seq-len")) + " is longer than --max-seq-len " +
                 std::to_string(cl.get<int>("max-seq-len")));
  cl.require(cl.get<double>("min-lr") <= cl.get<double>("lr"), "--min-lr must not exceed --lr");
  if (!cl.has("init")) as_usage_error([&] { return model_config(cl, 1); });
}

PretrainOptions pretrain_options(const CommandLine& cl) {
  PretrainOptions o;
  o.steps = cl.get<int>("steps");
  o.batch_size = cl.get<int>("batch-size");
  o.seq_len = cl.get<int>("seq-len");
  o.lr = cl.get<double>("lr");
  o.min_lr = cl.get<double>("min-lr");
  o.warmup_steps = cl.get<int>("warmup-steps");
  o.weight_decay = cl.get<double>("weight-decay");
  o.grad_clip = cl.get<double>("grad-clip");
  o.eval_every = cl.get<int>("eval-every");
  o.eval_batches = cl.get<int>("eval-batches");
  o.checkpoint_every = cl.get<int>("checkpoint-every");
  o.seed = cl.seed();
  o.out = cl.get<std::string>("out");
  o.metadata["pretrain_config"] = cl.resolved_json();
  return o;
}

void print_summary(const PretrainReport& r, const std::string& out) {
  std::cout << std::left << std::fixed;
  auto row = [](const std::string& key, const std::string& value) {
    std::cout << "  " << std::setw(20) << key << value << "\n";
  };
  std::ostringstream tps, train, test, ppl;
  tps << std::fixed << std::setprecision(0) << r.tokens / std::max(1e-9, r.seconds);
  train << std::setprecision(4) << r.final_train_loss;
  test << std::setprecision(4) << r.test_loss;
  ppl << std::setprecision(3) << std::exp(r.test_loss);
  std::cout << "pretrain summary\n";
  row("steps", std::to_string(r.steps));
  row("tokens", std::to_string(r.tokens));
  row("time", format_duration(r.seconds));
  row("tokens/s", tps.str());
  row("train loss (last)", train.str());
  row("held-out loss", test.str());
  row("held-out perplexity", ppl.str());
  row("checkpoint", out);
}

}  // namespace

int run_pretrain(int argc, const char* const* argv) {
  CommandLine cl("pretrain",
                 "Train a Llama decoder from scratch (or continue one) on packed sequences of "
                 "documents: AdamW, warm-up + cosine learning rate, gradient clipping, held-out "
                 "evaluation and checkpoints in the project's format.");
  add_options(cl);
  if (!cl.parse(argc, argv, std::cout)) return 0;
  const auto compute = start_command(cl);
  validate_pretrain_options(cl);
  const auto locks = claim_outputs("--out", {cl.get<std::string>("out")}, cl.get<bool>("overwrite"));
  const auto tokenizer = Tokenizer::load(cl.get<std::string>("tokenizer"));
  const int max_seq_len = cl.get<int>("max-seq-len");
  TokenStreams streams;
  if (cl.has("corpus")) streams = corpus_streams(cl, tokenizer);
  InstructionDataset dataset;
  TokenizedSplit examples;
  if (has_data(cl)) {
    dataset = load_instruction_dataset(dataset_options(cl));
    examples = tokenize_dataset(dataset, tokenizer, max_seq_len);
    const bool responses_only = cl.get<std::string>("loss-on") == "responses";
    append_examples(streams.train, streams.train_targets, examples.train, responses_only);
    append_examples(streams.test, streams.test_targets, examples.test, responses_only);
    std::cerr << "instruction data: " << dataset.tasks.size() << " tasks, " << examples.train.size() << " training and "
              << examples.test.size() << " test examples, packed into one stream\n";
  }
  std::cerr << "token streams: " << streams.train.size() << " training tokens, " << streams.test.size() << " held-out tokens\n";

  Llama model{nullptr};
  if (cl.has("init")) {
    model = load_model(cl.get<std::string>("init")).model;
    MOPS_CHECK(model->config().vocab_size >= tokenizer.vocab_size(),
               "--init model has a vocabulary of " << model->config().vocab_size << ", smaller than the tokenizer's "
                                                   << tokenizer.vocab_size());
  } else {
    model = Llama(model_config(cl, tokenizer.vocab_size()));
    model->init_weights(cl.seed());
  }
  model->to(compute.device);  // initialised on the CPU: the same start on every device
  std::cerr << "model: " << model->config().parameter_count() << " parameters\n";
  const auto report = pretrain(model, streams, pretrain_options(cl), std::cerr);
  print_summary(report, cl.get<std::string>("out"));
  if (has_data(cl)) print_task_metrics(model, tokenizer, dataset, examples, size_t(cl.get<int>("exact-match-per-task")));
  return 0;
}

}  // namespace mops
