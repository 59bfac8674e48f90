// Tokenizer: a SentencePiece model (e.g. a Llama tokenizer.model) for encoding and
// decoding text, and training a new one from documents. SentencePiece stays behind a
// pimpl so that this header does not include its headers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mops {

class Tokenizer {
 public:
  // Throws mops::Error naming the file if it is missing or not a SentencePiece model.
  static Tokenizer load(const std::string& model_path);

  std::vector<int> encode(const std::string& text) const;  // no BOS/EOS added
  std::string decode(const std::vector<int>& ids) const;   // ids out of range -> mops::Error
  int vocab_size() const;
  int bos_id() const;  // -1 when the model has none
  int eos_id() const;  // -1 when the model has none
  int pad_id() const;  // -1 when the model has none
  std::string piece(int id) const;

  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
};

struct TokenizerTrainOptions {
  int vocab_size = 2000;
  std::string model_type = "bpe";  // "bpe" or "unigram"
  double character_coverage = 1.0;
  // SentencePiece takes a 32-bit seed; larger values are folded into 32 bits.
  uint64_t seed = 0;
  // More than one thread may make unigram training non-deterministic.
  int num_threads = 1;
};

// Trains a tokenizer on DOCUMENTS (each split into sentences at newlines) and writes
// OUT_PREFIX.model and OUT_PREFIX.vocab; returns the path of the .model file. Special ids
// are fixed as in Llama: unk=0, bos=1, eos=2, no pad. Digits are split into single digits
// and unknown characters fall back to bytes, so no input is ever unknown. Text is not
// normalized, so decode(encode(s)) == s. Same documents and options -> identical files.
std::string train_tokenizer(const std::vector<std::string>& documents,
                            const std::string& out_prefix,
                            const TokenizerTrainOptions& options);

}  // namespace mops
