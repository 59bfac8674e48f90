// The strict number parsing of parse_number.h.
#include "parse_number.h"

#include <exception>

namespace mops {

std::optional<int64_t> parse_non_negative(const std::string& text) {
  size_t used = 0;
  long long value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || value < 0) return std::nullopt;
  return value;
}

}  // namespace mops
