// `mops pretrain`: a small Llama decoder from scratch on a text corpus, packed sequences.
#include <cmath>
#include <iomanip>
#include <iostream>

#include "checkpoint.h"
#include "cli/dataset_options.h"
#include "evaluation.h"
#include "command_start.h"
#include "cli/commands.h"
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
      ("out", po::value<std::string>()->required()->value_name("FILE"), "checkpoint to write (.safetensors), also during training")
      ("init", po::value<std::string>()->value_name("MODEL"), "continue from this checkpoint instead of random weights")
      ("dim", po::value<int>()->default_value(128), "model width C")
      ("layers", po::value<int>()->default_value(4), "decoder layers L")
      ("heads", po::value<int>()->default_value(4), "query heads H")
      ("kv-heads", po::value<int>()->default_value(2), "key/value heads G (divides H)")
      ("hidden", po::value<int>()->default_value(0), "SwiGLU width F; 0 = Llama's 8C/3 rounded up to 32")
      ("max-seq-len", po::value<int>()->default_value(512), "context the model is built for (prompt positions included)")
      ("seq-len", po::value<int>()->default_value(128), "training window length")
      ("batch-size", po::value<int>()->default_value(16), "windows per step")
      ("steps", po::value<int>()->default_value(1000), "optimizer steps")
      ("lr", po::value<double>()->default_value(1e-3), "peak learning rate (AdamW)")
      ("min-lr", po::value<double>()->default_value(1e-4), "learning rate at the end of the cosine decay")
      ("warmup-steps", po::value<int>()->default_value(50), "linear warm-up steps")
      ("weight-decay", po::value<double>()->default_value(0.1), "AdamW weight decay on matrices")
      ("grad-clip", po::value<double>()->default_value(1.0), "clip the gradient norm to this")
      ("eval-every", po::value<int>()->default_value(100), "held-out evaluation every N steps")
      ("eval-batches", po::value<int>()->default_value(8), "held-out batches per evaluation")
      ("checkpoint-every", po::value<int>()->default_value(0), "write --out every N steps (0: at the end only)")
      ("loss-on", po::value<std::string>()->default_value("all"),
       "with --data: 'all' tokens or only the 'responses' of instruction examples are loss targets "
       "(the sequences are packed either way)")
      ("exact-match-per-task", po::value<size_t>()->default_value(50),
       "with --data: test examples per task answered greedily for exact-match accuracy at the end");
  add_dataset_options(cl, false);
  cl.add_threads_option();
  cl.add_seed_option();
}

TokenStreams corpus_streams(const CommandLine& cl, const Tokenizer& tokenizer) {
  const auto corpus = read_corpus_option(cl, "corpus");
  std::cerr << "corpus: " << corpus.documents.size() << " documents\n";
  return build_token_streams(corpus.documents, tokenizer, cl.get<double>("test-fraction"), cl.get<uint64_t>("seed"));
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
  c.dim = cl.get_int_in("dim", 8, 1 << 14);
  c.n_layers = cl.get_int_in("layers", 1, 256);
  c.n_heads = cl.get_int_in("heads", 1, 1024);
  c.n_kv_heads = cl.get_int_in("kv-heads", 1, c.n_heads);
  c.hidden_dim = cl.get<int>("hidden") > 0 ? cl.get<int>("hidden") : llama_hidden_dim(c.dim, 32);
  c.vocab_size = vocab_size;
  c.max_seq_len = cl.get_int_in("max-seq-len", 2, 1 << 20);
  c.tied_classifier = true;
  c.validate("pretrain options (--dim/--heads/--kv-heads)");
  return c;
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
  o.seed = cl.get<uint64_t>("seed");
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
  start_command(cl);
  MOPS_CHECK(cl.has("corpus") || has_data(cl), "give training text with --corpus FILE... and/or --data SOURCE...");
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
    MOPS_CHECK(responses_only || cl.get<std::string>("loss-on") == "all",
               "--loss-on = " << cl.get<std::string>("loss-on") << " is not 'all' or 'responses'");
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
    model->init_weights(cl.get<uint64_t>("seed"));
  }
  std::cerr << "model: " << model->config().parameter_count() << " parameters\n";
  const auto report = pretrain(model, streams, pretrain_options(cl), std::cerr);
  print_summary(report, cl.get<std::string>("out"));
  if (has_data(cl)) print_task_metrics(model, tokenizer, dataset, examples, cl.get<size_t>("exact-match-per-task"));
  return 0;
}

}  // namespace mops
