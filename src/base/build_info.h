// Build facts recorded in results files.
#pragma once

namespace mops {

// The source tree's git commit at build time: "<sha>", "<sha>-dirty" when tracked files had
// changes, or "unknown" when the sources were not a git checkout.
const char* source_git_commit();

}  // namespace mops
