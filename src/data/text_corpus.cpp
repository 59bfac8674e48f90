#include "text_corpus.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "errors.h"

namespace mops {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* const kWhitespace = " \t\r\n\f\v";

std::string trim(const std::string& text) {
  const size_t begin = text.find_first_not_of(kWhitespace);
  if (begin == std::string::npos) return "";
  const size_t end = text.find_last_not_of(kWhitespace);
  return text.substr(begin, end - begin + 1);
}

bool is_blank(const std::string& line) {
  return line.find_first_not_of(kWhitespace) == std::string::npos;
}

// The lines of the file at PATH, without line endings (LF or CRLF).
std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream file(path);
  MOPS_CHECK(file.is_open(), "cannot open text corpus " << path << ": " << std::strerror(errno)
                                                        << "; check the path");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(file, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  MOPS_CHECK(!file.bad(), "error reading text corpus " << path << ": " << std::strerror(errno));
  return lines;
}

// Plain text: documents are separated by one or more blank lines.
void read_plain_text(const std::string& path, TextCorpus& corpus) {
  std::string document;
  auto flush = [&] {
    if (!is_blank(document)) corpus.documents.push_back(trim(document));
    document.clear();
  };
  for (const std::string& line : read_lines(path)) {
    if (is_blank(line)) {
      flush();
    } else {
      document += line;
      document += '\n';
    }
  }
  flush();
}

// The parser's message without nlohmann's "[json.exception.parse_error.101] " prefix.
std::string parser_message(const nlohmann::json::exception& error) {
  const std::string message = error.what();
  const size_t prefix_end = message.find("] ");
  return prefix_end == std::string::npos ? message : message.substr(prefix_end + 2);
}

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string joined;
  for (const std::string& item : items) joined += (joined.empty() ? "" : separator) + item;
  return joined;
}

// The document in one JSONL line: FIELDS joined by "\n". Returns nothing and describes
// the problem in *PROBLEM when the line is not a usable record.
std::optional<std::string> jsonl_document(const std::string& line,
                                          const std::vector<std::string>& fields,
                                          std::string* problem) {
  nlohmann::json record;
  try {
    record = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& error) {
    *problem = "not valid JSON (" + parser_message(error) + ")";
    return std::nullopt;
  }
  if (!record.is_object()) {
    *problem = std::string("expected a JSON object, got ") + record.type_name();
    return std::nullopt;
  }
  std::vector<std::string> parts;
  for (const std::string& field : fields) {
    const auto it = record.find(field);
    if (it == record.end() || it->is_null()) continue;
    if (!it->is_string()) {
      *problem = "field \"" + field + "\" holds " + it->type_name() + ", expected a string";
      return std::nullopt;
    }
    if (!it->get_ref<const std::string&>().empty()) parts.push_back(it->get<std::string>());
  }
  if (parts.empty()) {
    *problem = "record has none of the text fields " + join(fields, ", ") +
               " (all absent or empty; are these the fields that hold the text?)";
    return std::nullopt;
  }
  return join(parts, "\n");
}

void read_jsonl(const std::string& path, const TextCorpusOptions& options, TextCorpus& corpus) {
  const std::vector<std::string> lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (is_blank(lines[i])) continue;
    std::string problem;
    std::optional<std::string> document = jsonl_document(lines[i], options.jsonl_fields, &problem);
    if (document) {
      corpus.documents.push_back(std::move(*document));
    } else if (options.skip_bad_records) {
      ++corpus.skipped_records;
    } else {
      MOPS_FAIL(path << ":" << i + 1 << ": " << problem
                     << "; fix or remove the line, or skip bad records");
    }
  }
}

}  // namespace

TextCorpus read_text_corpus(const std::vector<std::string>& paths,
                            const TextCorpusOptions& options) {
  MOPS_CHECK(!paths.empty(), "no text corpus files given");
  MOPS_CHECK(!options.jsonl_fields.empty(), "no JSONL text fields given; name at least one");
  TextCorpus corpus;
  for (const std::string& path : paths) {
    if (ends_with(path, ".jsonl")) {
      read_jsonl(path, options, corpus);
    } else {
      read_plain_text(path, corpus);
    }
  }
  MOPS_CHECK(!corpus.documents.empty(),
             "no documents found in " << join(paths, ", ") << " (" << corpus.skipped_records
                                      << " bad records skipped); check the files and, for "
                                         "JSONL, the text fields ("
                                      << join(options.jsonl_fields, ", ") << ")");
  return corpus;
}

}  // namespace mops
