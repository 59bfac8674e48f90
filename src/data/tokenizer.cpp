#include "tokenizer.h"

#include <filesystem>
#include <iomanip>
#include <limits>
#include <sstream>
#include <map>

#include "atomic_file.h"
#include "errors.h"
#include "sentencepiece_plugin_loader.h"

namespace mops {

struct Tokenizer::Impl {
  std::unique_ptr<SentencePieceModel> model;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::string& model_path) {
  // Given a directory, SentencePiece ends the process (an uncaught std::ios_failure).
  MOPS_CHECK(!std::filesystem::is_directory(model_path),
             "tokenizer model " << model_path << " is a directory; pass the .model file in it");
  std::string error;
  auto impl = std::make_unique<Impl>();
  impl->model = sentencepiece_backend().load(model_path, &error);
  MOPS_CHECK(impl->model, "cannot load tokenizer " << model_path << ": " << error
                                                   << "; expected a SentencePiece .model file "
                                                      "such as a Llama tokenizer.model");
  return Tokenizer(std::move(impl));
}

std::vector<int> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto error = impl_->model->encode(text, &ids);
  MOPS_CHECK(error.empty(), "cannot tokenize text: " << error);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    MOPS_CHECK(ids[i] >= 0 && ids[i] < vocab_size(),
               "cannot decode token id " << ids[i] << " at position " << i
                                         << ": outside the vocabulary [0, " << vocab_size()
                                         << "); were the ids made with another tokenizer?");
  }
  std::string text;
  const auto error = impl_->model->decode(ids, &text);
  MOPS_CHECK(error.empty(), "cannot decode token ids: " << error);
  return text;
}

int Tokenizer::vocab_size() const { return impl_->model->piece_size(); }
int Tokenizer::bos_id() const { return impl_->model->bos_id(); }
int Tokenizer::eos_id() const { return impl_->model->eos_id(); }
int Tokenizer::pad_id() const { return impl_->model->pad_id(); }

std::string Tokenizer::piece(int id) const {
  MOPS_CHECK(id >= 0 && id < vocab_size(),
             "token id " << id << " is outside the vocabulary [0, " << vocab_size() << ")");
  return impl_->model->piece(id);
}

namespace {

// SentencePiece takes a 32-bit seed and treats UINT_MAX as "no seed".
unsigned int sentencepiece_seed(uint64_t seed) {
  return static_cast<unsigned int>(seed % std::numeric_limits<unsigned int>::max());
}

std::string exact_decimal(double value) {
  std::ostringstream out;
  out << std::setprecision(17) << value;
  return out.str();
}

std::map<std::string, std::string> trainer_arguments(
    const TokenizerTrainOptions& options) {
  return {
      {"vocab_size", std::to_string(options.vocab_size)},
      {"model_type", options.model_type},
      {"character_coverage", exact_decimal(options.character_coverage)},
      {"num_threads", std::to_string(options.num_threads)},
      // Llama's special ids and settings: lossless, digits split, bytes for the unknown.
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"split_digits", "true"},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"minloglevel", "2"},  // errors come back as a status; keep progress logs quiet
  };
}

std::string training_hint(const std::string& message, int vocab_size) {
  if (message.find("too high") != std::string::npos) {
    return "; the corpus is too small for a vocabulary of " + std::to_string(vocab_size) +
           ": use a smaller --vocab-size or more text";
  }
  if (message.find("smaller than required") != std::string::npos) {
    return "; the vocabulary needs room for the 256 byte pieces, the special pieces and "
           "every character kept: use a larger --vocab-size or a lower character coverage";
  }
  return "";
}

// SentencePiece's .vocab format: one "piece<TAB>score" line per id.
std::string vocab_text(const std::string& serialized_model) {
  std::string error;
  const auto model = sentencepiece_backend().load_serialized(serialized_model, &error);
  MOPS_CHECK(model, "SentencePiece produced an unreadable model: " << error);
  std::ostringstream out;
  for (int id = 0; id < model->piece_size(); ++id) out << model->piece(id) << '\t' << model->score(id) << '\n';
  return out.str();
}

}  // namespace

std::string train_tokenizer(const std::vector<std::string>& documents,
                            const std::string& out_prefix,
                            const TokenizerTrainOptions& options) {
  MOPS_CHECK(options.model_type == "bpe" || options.model_type == "unigram",
             "unknown tokenizer model type \"" << options.model_type
                                               << "\"; use \"bpe\" or \"unigram\"");
  MOPS_CHECK(options.vocab_size > 0, "tokenizer vocab size must be positive, got "
                                         << options.vocab_size);
  MOPS_CHECK(options.num_threads > 0, "tokenizer training threads must be positive, got "
                                          << options.num_threads);
  MOPS_CHECK(!documents.empty(), "cannot train a tokenizer on no documents");
  const std::filesystem::path out_dir = std::filesystem::path(out_prefix).parent_path();
  MOPS_CHECK(out_dir.empty() || std::filesystem::is_directory(out_dir),
             "tokenizer output directory " << out_dir.string()
                                           << " does not exist; create it first");
  // Training into a string (not to model_prefix files) keeps the output path out of the
  // trainer arguments recorded in the model, so its bytes do not depend on where it goes.
  std::string model;
  const auto error = sentencepiece_backend().train(documents, trainer_arguments(options),
                                                   sentencepiece_seed(options.seed), &model);
  MOPS_CHECK(error.empty(), "tokenizer training for " << out_prefix << " failed: " << error
                                                      << training_hint(error, options.vocab_size));
  const std::string model_path = out_prefix + ".model";
  write_file_atomically(model_path, model.data(), model.size());
  const std::string vocab = vocab_text(model);
  write_file_atomically(out_prefix + ".vocab", vocab.data(), vocab.size());
  return model_path;
}

}  // namespace mops
