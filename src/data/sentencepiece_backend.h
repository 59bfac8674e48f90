// The interface of the SentencePiece plug-in (libmops_sentencepiece.so).
//
// Why a plug-in: Debian's libsentencepiece carries its own copy of protobuf 3.14 while
// LibTorch links the system protobuf 3.21. Linked into one program the two share a symbol
// namespace and it crashes before main (protobuf's start-up code binds to SentencePiece's
// copy). The plug-in is opened with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) so that SentencePiece
// binds to its own protobuf, and only this interface crosses: no exceptions, errors as text.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mops {

class SentencePieceModel {
 public:
  virtual ~SentencePieceModel() = default;
  // Each returns an error message, empty on success.
  virtual std::string encode(const std::string& text, std::vector<int>* ids) const = 0;
  virtual std::string decode(const std::vector<int>& ids, std::string* text) const = 0;
  virtual int piece_size() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  virtual int pad_id() const = 0;
  virtual std::string piece(int id) const = 0;
  virtual float score(int id) const = 0;
};

class SentencePieceBackend {
 public:
  virtual ~SentencePieceBackend() = default;
  // nullptr and *error set on failure.
  virtual std::unique_ptr<SentencePieceModel> load(const std::string& path, std::string* error) const = 0;
  virtual std::unique_ptr<SentencePieceModel> load_serialized(const std::string& bytes,
                                                              std::string* error) const = 0;
  // Trains on the non-empty lines of `documents`; the serialized model goes to *model.
  virtual std::string train(const std::vector<std::string>& documents,
                            const std::map<std::string, std::string>& arguments, unsigned int seed,
                            std::string* model) const = 0;
};

}  // namespace mops

// The plug-in's one exported symbol.
extern "C" const mops::SentencePieceBackend* mops_sentencepiece_backend();
