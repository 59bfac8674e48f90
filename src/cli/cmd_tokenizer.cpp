// `mops tokenizer train` and `mops tokenizer encode`.
#include <iostream>

#include "command_start.h"
#include "commands.h"
#include "dataset_options.h"
#include "output_files.h"
#include "text_corpus.h"
#include "tokenizer.h"

namespace mops {

int run_tokenizer_train(int argc, const char* const* argv) {
  CommandLine cl("tokenizer train",
                 "Train a SentencePiece tokenizer (Llama's special ids: unk 0, bos 1, eos 2; digits "
                 "split; byte fallback) on plain-text files (documents separated by blank lines) or "
                 "JSONL files. Writes PREFIX.model and PREFIX.vocab.");
  cl.options().add_options()
      ("input", po::value<std::vector<std::string>>()->multitoken()->value_name("FILE..."),
       "corpus files: *.jsonl (one JSON object per line) or plain text")
      ("fields", po::value<std::vector<std::string>>()->multitoken()->default_value({"text"}, "text")->value_name("NAME..."),
       "JSONL string fields that hold the text, joined by newlines")
      ("out", po::value<std::string>()->required()->value_name("PREFIX"),
       "output prefix: writes PREFIX.model and PREFIX.vocab, never replaced without --overwrite");
  cl.add_number<int>("vocab-size", 2000, Range::closed(8, 1 << 20), "number of pieces", "N");
  cl.add_choice("model-type", "bpe", {"bpe", "unigram"}, "the SentencePiece algorithm");
  add_dataset_options(cl, false);  // --data: the training records, written with the prompt template
  cl.add_threads_option();
  cl.add_seed_option();
  cl.add_overwrite_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  cl.require(cl.has("input") || has_data(cl), "give text with --input FILE... and/or --data SOURCE...");
  start_command(cl);
  const auto prefix = cl.get<std::string>("out");
  const auto locks = claim_outputs("--out", {prefix + ".model", prefix + ".vocab"}, cl.get<bool>("overwrite"));
  TextCorpus corpus;
  if (cl.has("input")) corpus = read_corpus_option(cl, "input");
  if (has_data(cl)) {
    const auto dataset = load_instruction_dataset(dataset_options(cl));
    for (const auto& r : dataset.train) corpus.documents.push_back(format_prompt(r) + r.response);
  }
  TokenizerTrainOptions options;
  options.vocab_size = cl.get<int>("vocab-size");
  options.model_type = cl.get<std::string>("model-type");
  options.seed = cl.seed();
  const auto path = train_tokenizer(corpus.documents, prefix, options);
  const auto tokenizer = Tokenizer::load(path);
  std::cout << "wrote " << path << ": " << tokenizer.vocab_size() << " pieces from "
            << corpus.documents.size() << " documents\n";
  return 0;
}

int run_tokenizer_encode(int argc, const char* const* argv) {
  CommandLine cl("tokenizer encode", "Print the token ids of a text, space separated (no BOS/EOS).");
  cl.options().add_options()
      ("tokenizer", po::value<std::string>()->required()->value_name("FILE"), "SentencePiece .model file")
      ("text", po::value<std::string>()->required()->value_name("TEXT"), "text to encode")
      ("pieces", po::bool_switch(), "print the pieces instead of the ids");
  if (!cl.parse(argc, argv, std::cout)) return 0;
  const auto tokenizer = Tokenizer::load(cl.get<std::string>("tokenizer"));
  const auto ids = tokenizer.encode(cl.get<std::string>("text"));
  for (size_t i = 0; i < ids.size(); ++i) {
    std::cout << (i ? " " : "") << (cl.get<bool>("pieces") ? tokenizer.piece(ids[i]) : std::to_string(ids[i]));
  }
  std::cout << "\n";
  return 0;
}

}  // namespace mops
