// Finds and opens the SentencePiece plug-in once per process (see sentencepiece_backend.h).
// Search order: $MOPS_PLUGIN_DIR, the directory of the running executable and its ../lib/mops,
// then the build directory this library was compiled in.
#pragma once
#include "sentencepiece_backend.h"

namespace mops {

const SentencePieceBackend& sentencepiece_backend();

}  // namespace mops
