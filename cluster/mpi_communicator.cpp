#include "mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <exception>

#include "errors.h"

namespace mops {
namespace {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error code " + std::to_string(code);
  return std::string(text, size_t(length));
}

// MPI counts are int: larger payloads go in pieces of at most this many elements.
constexpr size_t kMaxMpiCount = INT_MAX;

}  // namespace
}  // namespace mops

// MOPS_MPI_CHECK(MPI_Xxx(...)): throws mops::Error naming the call and MPI's own message;
// throw_error adds file:line and, once set_error_rank ran, the rank.
#define MOPS_MPI_CHECK(call)                                                          \
  do {                                                                                \
    const int mops_mpi_code_ = (call);                                                \
    MOPS_CHECK(mops_mpi_code_ == MPI_SUCCESS, #call " failed: " << mpi_error_string(mops_mpi_code_)); \
  } while (0)

namespace mops {

MpiCommunicator::MpiCommunicator() {
  int initialized = 0, finalized = 0;
  MOPS_MPI_CHECK(MPI_Initialized(&initialized));
  MOPS_MPI_CHECK(MPI_Finalized(&finalized));
  MOPS_CHECK(!finalized,
             "cannot create an mpi communicator: MPI was already finalised in this process (an earlier "
             "mpi communicator that started MPI ended it). Create one per process, or call "
             "MPI_Init_thread yourself before creating several.");
  if (!initialized) {
    // FUNNELED: LibTorch runs OpenMP threads, but only the main thread calls MPI.
    int provided = 0;
    MOPS_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    owns_mpi_ = true;
  }
  MOPS_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
  // The default handler (errors are fatal) would abort without a word; return codes let
  // MOPS_MPI_CHECK say which call failed and why.
  MOPS_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  MOPS_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  MOPS_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  set_error_rank(rank_);
}

// Return codes are ignored here: a destructor must not throw.
MpiCommunicator::~MpiCommunicator() {
  int finalized = 1;
  MPI_Finalized(&finalized);
  if (finalized) return;  // whoever initialised MPI ended it first; comm_ went with it
  // Freeing the communicator and finalising are collective: while an exception unwinds this
  // rank, the others may sit in a collective it never joined, and both calls would wait for
  // them forever. Left undone, the rank exits without MPI_Finalize and mpirun stops the job.
  if (std::uncaught_exceptions() > 0) return;
  MPI_Comm_free(&comm_);
  if (owns_mpi_) MPI_Finalize();
}

void MpiCommunicator::barrier() { MOPS_MPI_CHECK(MPI_Barrier(comm_)); }

void MpiCommunicator::abort(int exit_code) {
  // MPI_COMM_WORLD, not comm_: every process of the job must stop.
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this keeps the [[noreturn]] promise
}

void MpiCommunicator::do_allreduce_sum(double* values, size_t count) {
  for (size_t done = 0; done < count;) {
    const int piece = int(std::min(count - done, kMaxMpiCount));
    MOPS_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values + done, piece, MPI_DOUBLE, MPI_SUM, comm_));
    done += size_t(piece);
  }
}

void MpiCommunicator::do_broadcast(void* data, size_t bytes, int root) {
  auto* first = static_cast<char*>(data);
  for (size_t done = 0; done < bytes;) {
    const int piece = int(std::min(bytes - done, kMaxMpiCount));
    MOPS_MPI_CHECK(MPI_Bcast(first + done, piece, MPI_BYTE, root, comm_));
    done += size_t(piece);
  }
}

}  // namespace mops
