// One instruction-following example, whatever dataset it came from.
#pragma once
#include <string>
#include <vector>

namespace mops {

struct InstructionRecord {
  std::string task;         // category (Dolly) or task name (Super-NaturalInstructions, skills7)
  std::string instruction;  // never empty
  std::string context;      // may be empty
  std::string response;     // never empty
  std::string source;       // where it came from: "FILE:LINE", "FILE#INSTANCE_ID" or "skills7:SEED:INDEX"
};

// Records and how many malformed ones were skipped on the way (--skip-bad-records).
struct RecordSet {
  std::vector<InstructionRecord> records;
  size_t skipped = 0;
};

}  // namespace mops
