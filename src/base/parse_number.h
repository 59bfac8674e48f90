// Strict parsing of numbers written in option values: the whole text must be the number.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace mops {

// The whole of `text` as a non-negative integer; nothing when it is anything else.
std::optional<int64_t> parse_non_negative(const std::string& text);

}  // namespace mops
