#include "local_communicator.h"

#include <cstdlib>

namespace mops {

// std::exit rather than std::abort: a single process has no other rank to stop, and exit
// still flushes stdio and runs the atexit handlers (HDF5 closes its open files in one).
void LocalCommunicator::abort(int exit_code) { std::exit(exit_code); }

}  // namespace mops
