// A rank that fails must end the job, not hang it: the last rank throws while the others wait
// in allreduce_sum. Its MpiCommunicator is destroyed while the exception unwinds and must not
// finalise MPI (that would wait for the others forever); the rank exits non-zero and mpirun
// stops the job. ctest passes it when the rank's error shows and the job ended before the
// timeout.
#include <cstdio>

#include "communicator.h"
#include "errors.h"

namespace {

void fail_on_the_last_rank() {
  const auto comm = mops::make_communicator("mpi");
  double value = 1;
  if (comm->rank() == comm->size() - 1) MOPS_FAIL("the last rank failed on purpose");
  comm->allreduce_sum(&value, 1);
}

}  // namespace

int main() {
  try {
    fail_on_the_last_rank();
  } catch (const mops::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
