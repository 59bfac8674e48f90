// Tests for text corpora (text_corpus.h) and SentencePiece tokenizers (tokenizer.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "build_paths.h"
#include "errors.h"
#include "test_support.h"
#include "text_corpus.h"
#include "tokenizer.h"

namespace fs = std::filesystem;

namespace mops {
namespace {

const std::string kDolly = MOPS_SHARED_DIR "/data/dolly-sample.jsonl";

fs::path test_dir() { return fresh_test_dir("tokenizer"); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}


TEST(TextCorpus, ReadsChosenJsonlFieldsOfDolly) {
  TextCorpusOptions options;
  options.jsonl_fields = {"instruction", "context", "response"};
  const TextCorpus corpus = read_text_corpus({kDolly}, options);
  ASSERT_EQ(corpus.documents.size(), 8u);
  EXPECT_EQ(corpus.skipped_records, 0u);
  EXPECT_EQ(corpus.documents[0].rfind("When did Virgin Australia start operating?\n", 0), 0u);
  EXPECT_NE(corpus.documents[0].find("Virgin Australia commenced services"), std::string::npos);
  // Record 2 has an empty context: instruction and response only.
  EXPECT_EQ(corpus.documents[1], "Which is a species of fish? Tope or Rope\nTope");
}

TEST(TextCorpus, SplitsPlainTextOnBlankLines) {
  const fs::path dir = test_dir();
  const std::string path = write_file(
      dir / "doc.txt", "\n  First paragraph\nstill first.  \n\n\n \t\nSecond.\r\n\r\nThird\n");
  const TextCorpus corpus = read_text_corpus({path}, {});
  EXPECT_EQ(corpus.documents,
            (std::vector<std::string>{"First paragraph\nstill first.", "Second.", "Third"}));
}

TEST(TextCorpus, ConcatenatesFilesInOrder) {
  const fs::path dir = test_dir();
  const std::string txt = write_file(dir / "a.txt", "one\n\ntwo\n");
  const std::string jsonl = write_file(dir / "b.jsonl", "{\"text\": \"three\"}\n\n");
  EXPECT_EQ(read_text_corpus({txt, jsonl}, {}).documents,
            (std::vector<std::string>{"one", "two", "three"}));
}

std::string write_jsonl_with_bad_line_3(const fs::path& dir) {
  return write_file(dir / "bad.jsonl",
                    "{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"thr\n"
                    "{\"text\": \"four\"}\n");
}

TEST(TextCorpus, MalformedJsonNamesFileAndLine) {
  const std::string path = write_jsonl_with_bad_line_3(test_dir());
  const std::string error = error_of([&] { read_text_corpus({path}, {}); });
  EXPECT_NE(error.find(path + ":3: not valid JSON ("), std::string::npos) << error;
}

TEST(TextCorpus, SkipsAndCountsBadRecords) {
  const std::string path = write_jsonl_with_bad_line_3(test_dir());
  TextCorpusOptions options;
  options.skip_bad_records = true;
  const TextCorpus corpus = read_text_corpus({path}, options);
  EXPECT_EQ(corpus.documents, (std::vector<std::string>{"one", "two", "four"}));
  EXPECT_EQ(corpus.skipped_records, 1u);
}

TEST(TextCorpus, RecordWithoutFieldsNamesFileAndLine) {
  const std::string path = write_file(test_dir() / "fields.jsonl",
                                      "{\"text\": \"one\"}\n\n{\"body\": \"two\"}\n");
  const std::string error = error_of([&] { read_text_corpus({path}, {}); });
  EXPECT_NE(error.find(path + ":3: record has none of the text fields text"), std::string::npos)
      << error;
}

TEST(TextCorpus, MissingFileIsAnError) {
  const std::string path = (test_dir() / "missing.txt").string();
  const std::string error = error_of([&] { read_text_corpus({path}, {}); });
  EXPECT_NE(error.find("cannot open text corpus " + path + ": No such file or directory"),
            std::string::npos)
      << error;
}

TEST(TextCorpus, EmptyCorpusIsAnError) {
  const std::string path = write_file(test_dir() / "empty.txt", "\n \n");
  EXPECT_NE(error_of([&] { read_text_corpus({path}, {}); }).find("no documents found in " + path),
            std::string::npos);
}

// A few hundred short sentences with words and numbers, the same on every run.
std::vector<std::string> generated_documents() {
  const std::vector<std::string> subjects = {"The cat", "A farmer", "Our team", "The river",
                                             "My sister", "The old train", "A robot"};
  const std::vector<std::string> verbs = {"counted", "carried", "painted", "found", "sold"};
  const std::vector<std::string> objects = {"apples", "boxes", "stones", "letters", "coins"};
  std::vector<std::string> documents;
  for (int i = 0; i < 300; ++i) {
    std::ostringstream sentence;
    sentence << subjects[i % subjects.size()] << " " << verbs[(i / 7) % verbs.size()] << " "
             << (i * 37) % 1000 << " " << objects[(i / 3) % objects.size()] << " on day "
             << i % 31 + 1 << ", at " << i % 24 << ":" << (i * 7) % 60 << "!";
    documents.push_back(sentence.str());
  }
  return documents;
}

std::vector<std::string> training_documents() {
  std::vector<std::string> documents = generated_documents();
  TextCorpusOptions options;
  options.jsonl_fields = {"instruction", "context", "response"};
  for (std::string& document : read_text_corpus({kDolly}, options).documents) {
    documents.push_back(std::move(document));
  }
  return documents;
}

TokenizerTrainOptions small_options() {
  TokenizerTrainOptions options;
  options.vocab_size = 400;
  return options;
}

std::string train_small(const fs::path& dir) {
  return train_tokenizer(training_documents(), (dir / "tok").string(), small_options());
}

TEST(Tokenizer, TrainWritesModelAndVocabWithLlamaSpecialIds) {
  const fs::path dir = test_dir();
  const std::string model_path = train_small(dir);
  EXPECT_EQ(model_path, (dir / "tok.model").string());
  EXPECT_TRUE(fs::exists(dir / "tok.vocab"));
  const Tokenizer tokenizer = Tokenizer::load(model_path);
  EXPECT_EQ(tokenizer.vocab_size(), 400);
  EXPECT_EQ(tokenizer.bos_id(), 1);
  EXPECT_EQ(tokenizer.eos_id(), 2);
  EXPECT_EQ(tokenizer.pad_id(), -1);
  EXPECT_EQ(tokenizer.piece(0), "<unk>");
  EXPECT_EQ(tokenizer.piece(1), "<s>");
  EXPECT_EQ(tokenizer.piece(2), "</s>");
  EXPECT_EQ(tokenizer.piece(3), "<0x00>");
}

TEST(Tokenizer, RoundTripsTextExactly) {
  const Tokenizer tokenizer = Tokenizer::load(train_small(test_dir()));
  for (const std::string text :
       {"The cat counted 123 apples.", "Virgin Australia commenced services on 31 August 2000",
        "  two  spaces, (parens) & \"quotes\"; 3.14159?!", "Größe → 42", "日本語のテキスト 🙂",
        "tabs\tand\nnewlines", ""}) {
    const std::vector<int> ids = tokenizer.encode(text);
    EXPECT_EQ(tokenizer.decode(ids), text);
    for (int id : ids) EXPECT_NE(id, 0) << "unknown piece in \"" << text << "\"";
  }
}

TEST(Tokenizer, SplitsDigitsIntoSinglePieces) {
  const Tokenizer tokenizer = Tokenizer::load(train_small(test_dir()));
  std::vector<std::string> pieces;
  for (int id : tokenizer.encode("year 2024")) pieces.push_back(tokenizer.piece(id));
  ASSERT_GE(pieces.size(), 4u);
  EXPECT_EQ(std::vector<std::string>(pieces.end() - 4, pieces.end()),
            (std::vector<std::string>{"2", "0", "2", "4"}));
}

TEST(Tokenizer, FallsBackToBytesForUnseenCharacters) {
  const Tokenizer tokenizer = Tokenizer::load(train_small(test_dir()));
  std::vector<std::string> pieces;
  for (int id : tokenizer.encode("ö")) pieces.push_back(tokenizer.piece(id));
  EXPECT_NE(std::find(pieces.begin(), pieces.end(), "<0xC3>"), pieces.end());
  EXPECT_NE(std::find(pieces.begin(), pieces.end(), "<0xB6>"), pieces.end());
}

TEST(Tokenizer, TrainingIsDeterministic) {
  const fs::path dir = test_dir();
  fs::create_directories(dir / "elsewhere");
  for (const std::string model_type : {"bpe", "unigram"}) {
    TokenizerTrainOptions options = small_options();
    options.model_type = model_type;
    // Different output paths too: the model must not record where it was written.
    const std::string first =
        train_tokenizer(training_documents(), (dir / (model_type + "1")).string(), options);
    const std::string second = train_tokenizer(
        training_documents(), (dir / "elsewhere" / (model_type + "2")).string(), options);
    EXPECT_FALSE(read_file(first).empty());
    EXPECT_TRUE(read_file(first) == read_file(second)) << model_type << " models differ";
  }
}

TEST(Tokenizer, UnigramTrainsAndRoundTrips) {
  TokenizerTrainOptions options = small_options();
  options.model_type = "unigram";
  const fs::path dir = test_dir();
  const Tokenizer tokenizer =
      Tokenizer::load(train_tokenizer(training_documents(), (dir / "uni").string(), options));
  EXPECT_EQ(tokenizer.vocab_size(), 400);
  const std::string text = "A robot sold 987 coins → Größe";
  EXPECT_EQ(tokenizer.decode(tokenizer.encode(text)), text);
}

TEST(Tokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  const Tokenizer tokenizer = Tokenizer::load(train_small(test_dir()));
  EXPECT_NE(error_of([&] { tokenizer.decode({5, 400}); }).find("cannot decode token id 400"),
            std::string::npos);
  EXPECT_NE(error_of([&] { tokenizer.decode({-1}); }).find("cannot decode token id -1"),
            std::string::npos);
}

TEST(Tokenizer, LoadMissingFileNamesIt) {
  const std::string path = (test_dir() / "missing.model").string();
  const std::string error = error_of([&] { Tokenizer::load(path); });
  EXPECT_NE(error.find("cannot load tokenizer " + path), std::string::npos) << error;
}

TEST(Tokenizer, LoadDirectoryNamesIt) {
  const std::string path = test_dir().string();
  const std::string error = error_of([&] { Tokenizer::load(path); });
  EXPECT_NE(error.find("tokenizer model " + path + " is a directory"), std::string::npos)
      << error;
}

TEST(Tokenizer, LoadGarbageFileNamesIt) {
  const std::string path = write_file(test_dir() / "garbage.model", "this is not a model");
  const std::string error = error_of([&] { Tokenizer::load(path); });
  EXPECT_NE(error.find("cannot load tokenizer " + path), std::string::npos) << error;
  EXPECT_NE(error.find("SentencePiece .model"), std::string::npos) << error;
}

TEST(Tokenizer, TooLargeVocabSuggestsSmallerVocabSize) {
  TokenizerTrainOptions options;
  options.vocab_size = 50000;
  const std::string prefix = (test_dir() / "huge").string();
  const std::string error =
      error_of([&] { train_tokenizer(generated_documents(), prefix, options); });
  EXPECT_NE(error.find("smaller --vocab-size"), std::string::npos) << error;
}

TEST(Tokenizer, TooSmallVocabSuggestsLargerVocabSize) {
  TokenizerTrainOptions options;
  options.vocab_size = 100;  // less than the 256 byte pieces alone
  const std::string prefix = (test_dir() / "tiny").string();
  const std::string error =
      error_of([&] { train_tokenizer(generated_documents(), prefix, options); });
  EXPECT_NE(error.find("larger --vocab-size"), std::string::npos) << error;
}

}  // namespace
}  // namespace mops
