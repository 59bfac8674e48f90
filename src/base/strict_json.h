// JSON parsing that refuses the two things nlohmann::json accepts silently: a key given twice
// in one object (nlohmann keeps the last) and a NUL byte (nlohmann stops reading there, so
// anything after it is ignored). Header-only and torch-free: the checkpoint readers' fuzz
// targets compile it with nothing else.
#pragma once
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "errors.h"

namespace mops {

// Parses [first, last) as one JSON value. Errors read "WHAT is not valid JSON: ..." or
// "WHAT has key 'K' twice in OBJECT".
inline nlohmann::json parse_strict_json(const std::string& what, const char* first, const char* last) {
  const void* nul = first == last ? nullptr : std::memchr(first, '\0', static_cast<std::size_t>(last - first));
  MOPS_CHECK(!nul, what << " is not valid JSON: NUL byte at offset " << static_cast<const char*>(nul) - first);
  struct Open {  // an object or array being parsed
    bool is_object;
    std::string name;  // its key in the enclosing object ("the top-level object" at the top)
    std::set<std::string> keys;
  };
  std::vector<Open> open;
  std::string key, duplicate;  // the last key read; the first key found twice, with where
  auto callback = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start || event == Event::array_start) {
      const std::string name = open.empty()         ? "the top-level object"
                               : open.back().is_object ? "'" + key + "'"
                                                     : "an element of " + open.back().name;
      open.push_back({event == Event::object_start, name, {}});
    } else if (event == Event::object_end || event == Event::array_end) {
      open.pop_back();
    } else if (event == Event::key) {
      key = parsed.get<std::string>();
      if (!open.back().keys.insert(key).second && duplicate.empty())
        duplicate = "key '" + key + "' twice in " + open.back().name;
    }
    return true;
  };
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(first, last, callback);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range 406 (number overflow)
    MOPS_FAIL(what << " is not valid JSON: " << e.what());
  }
  MOPS_CHECK(duplicate.empty(), what << " has " << duplicate << " (a JSON object's keys must be unique)");
  return value;
}

}  // namespace mops
