#include "build_info.h"

#include "source_git_commit.h"  // generated at build time by cmake/source_git_commit.cmake

namespace mops {

const char* source_git_commit() { return MOPS_SOURCE_GIT_COMMIT; }

}  // namespace mops
