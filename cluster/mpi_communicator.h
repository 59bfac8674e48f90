// MpiCommunicator: MPI_Allreduce / MPI_Bcast / MPI_Barrier over all ranks of MPI_COMM_WORLD.
// It works on its own duplicate of MPI_COMM_WORLD, so that its messages never match another
// library's and its error handler (errors return, checked, thrown as mops::Error) changes
// nothing for other users of MPI in the process.
// MPI is initialised here when nobody did it before, and then finalised by the destructor;
// since MPI cannot be initialised twice, a process that lets MpiCommunicator own MPI can
// create only one of them (call MPI_Init_thread yourself to create several, as tests do).
#pragma once
#include <mpi.h>

#include "communicator.h"

namespace mops {

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator();
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }
  void barrier() override;
  [[noreturn]] void abort(int exit_code) override;

 protected:
  void do_allreduce_sum(double* values, size_t count) override;
  void do_broadcast(void* data, size_t bytes, int root) override;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool owns_mpi_ = false;  // this object called MPI_Init_thread, so it calls MPI_Finalize
};

}  // namespace mops
