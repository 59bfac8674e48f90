// The SentencePiece plug-in: everything that touches SentencePiece (see sentencepiece_backend.h
// for why it lives in its own shared object).
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <unordered_map>

#include "sentencepiece_backend.h"

namespace mops {
namespace {

// The interface's convention: empty on success, SentencePiece's message otherwise.
std::string message(const sentencepiece::util::Status& status) { return status.ok() ? "" : status.ToString(); }

class Model : public SentencePieceModel {
 public:
  sentencepiece::SentencePieceProcessor processor;

  std::string encode(const std::string& text, std::vector<int>* ids) const override {
    return message(processor.Encode(text, ids));
  }
  std::string decode(const std::vector<int>& ids, std::string* text) const override {
    return message(processor.Decode(ids, text));
  }
  int piece_size() const override { return processor.GetPieceSize(); }
  int bos_id() const override { return processor.bos_id(); }
  int eos_id() const override { return processor.eos_id(); }
  int pad_id() const override { return processor.pad_id(); }
  std::string piece(int id) const override { return processor.IdToPiece(id); }
  float score(int id) const override { return processor.GetScore(id); }
};

// Feeds the non-empty lines of the documents to the trainer, one sentence per line.
class DocumentLines : public sentencepiece::SentenceIterator {
 public:
  explicit DocumentLines(const std::vector<std::string>& documents) : documents_(documents) { advance(); }
  bool done() const override { return document_ >= documents_.size(); }
  void Next() override { advance(); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  // Moves to the next non-empty line, or to done().
  void advance() {
    while (document_ < documents_.size()) {
      const std::string& document = documents_[document_];
      if (offset_ > document.size()) {
        ++document_;
        offset_ = 0;
        continue;
      }
      size_t end = document.find('\n', offset_);
      if (end == std::string::npos) end = document.size();
      line_ = document.substr(offset_, end - offset_);
      offset_ = end + 1;
      if (!line_.empty()) return;
    }
  }

  const std::vector<std::string>& documents_;
  size_t document_ = 0;
  size_t offset_ = 0;
  std::string line_;
};

class Backend : public SentencePieceBackend {
 public:
  std::unique_ptr<SentencePieceModel> load(const std::string& path, std::string* error) const override {
    auto model = std::make_unique<Model>();
    const auto status = model->processor.Load(path);
    if (status.ok()) return model;
    *error = status.ToString();
    return nullptr;
  }

  std::unique_ptr<SentencePieceModel> load_serialized(const std::string& bytes, std::string* error) const override {
    auto model = std::make_unique<Model>();
    const auto status = model->processor.LoadFromSerializedProto(bytes);
    if (status.ok()) return model;
    *error = status.ToString();
    return nullptr;
  }

  std::string train(const std::vector<std::string>& documents, const std::map<std::string, std::string>& arguments,
                    unsigned int seed, std::string* model) const override {
    sentencepiece::SetRandomGeneratorSeed(seed);
    DocumentLines lines(documents);
    const std::unordered_map<std::string, std::string> args(arguments.begin(), arguments.end());
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines, model);
    return message(status);
  }
};

}  // namespace
}  // namespace mops

extern "C" const mops::SentencePieceBackend* mops_sentencepiece_backend() {
  static const mops::Backend backend;
  return &backend;
}
