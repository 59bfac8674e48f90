// Text corpora: reads documents from plain-text and JSONL files, for tokenizer training
// and pretraining.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace mops {

struct TextCorpusOptions {
  // For .jsonl: these string fields of each record, joined by "\n". Fields that are
  // absent, null or empty are skipped; a record with none of them is a bad record.
  std::vector<std::string> jsonl_fields = {"text"};
  // Count and skip bad JSONL lines (malformed JSON, no text field) instead of failing.
  bool skip_bad_records = false;
};

struct TextCorpus {
  std::vector<std::string> documents;
  size_t skipped_records = 0;
};

// Reads the documents of every file in PATHS, in order. A path ending in .jsonl holds one
// JSON object per line (blank lines ignored). Any other file is plain text: documents are
// separated by one or more blank lines and trimmed of surrounding whitespace.
// Throws mops::Error on an unreadable file, a bad record, or when no document is found.
TextCorpus read_text_corpus(const std::vector<std::string>& paths,
                            const TextCorpusOptions& options);

}  // namespace mops
