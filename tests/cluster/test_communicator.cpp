// Communicator without MPI: the local communicator's rank, size, data and exact byte counters,
// and the errors of make_communicator (unknown kinds, nccl without GPU or without NCCL).
// The MPI and NCCL communicators across ranks: tests/mpi/communicator_mpi_test.cpp.
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "communicator.h"
#include "test_support.h"

namespace mops {
namespace {

TEST(LocalCommunicator, IsRankZeroOfOne) {
  const auto comm = make_communicator("local");
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->name(), "local");
  comm->barrier();
}

TEST(LocalCommunicator, SumOverOneRankLeavesTheValues) {
  const auto comm = make_communicator("local");
  const std::vector<double> original = {1.5, -2.0, 3.25e-300, 7e300, 0.0};
  std::vector<double> values = original;
  comm->allreduce_sum(values.data(), values.size());
  EXPECT_EQ(values, original);
}

TEST(LocalCommunicator, BroadcastFromRankZeroLeavesTheBytes) {
  const auto comm = make_communicator("local");
  std::vector<char> bytes = {'a', 'b', 'c'};
  comm->broadcast(bytes.data(), bytes.size(), 0);
  EXPECT_EQ(bytes, (std::vector<char>{'a', 'b', 'c'}));
}

TEST(LocalCommunicator, CountsExactlyThePayloadBytes) {
  const auto comm = make_communicator("local");
  std::vector<double> values(5, 1.0);
  std::vector<char> bytes(13, 'x');
  for (int i = 0; i < 3; ++i) comm->allreduce_sum(values.data(), values.size());
  comm->allreduce_sum(nullptr, 0);
  comm->broadcast(bytes.data(), bytes.size(), 0);
  comm->broadcast(bytes.data(), bytes.size(), 0);
  comm->barrier();  // moves no payload
  EXPECT_EQ(comm->bytes_reduced(), 3u * 5u * sizeof(double));  // 120
  EXPECT_EQ(comm->bytes_broadcast(), 26u);
  EXPECT_GE(comm->seconds_communicating(), 0.0);
}

TEST(LocalCommunicator, RejectsRootOutsideTheJobAndNullData) {
  const auto comm = make_communicator("local");
  char byte = 0;
  EXPECT_NE(error_of([&] { comm->broadcast(&byte, 1, 1); })
                .find("broadcast from root 1, but the local communicator has ranks 0..0"),
            std::string::npos);
  EXPECT_NE(error_of([&] { comm->allreduce_sum(nullptr, 4); }).find("allreduce_sum of 4 values from a null pointer"),
            std::string::npos);
  EXPECT_EQ(comm->bytes_broadcast(), 0u);  // failed calls count nothing
  EXPECT_EQ(comm->bytes_reduced(), 0u);
}

TEST(MakeCommunicator, UnknownKindListsTheKinds) {
  const std::string message = error_of([] { make_communicator("gloo"); });
  EXPECT_NE(message.find("unknown communicator 'gloo'; choose one of local|mpi|nccl|auto"), std::string::npos)
      << message;
}

TEST(MakeCommunicator, AutoWithoutLauncherIsLocal) {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"})
    if (std::getenv(name) != nullptr) GTEST_SKIP() << "started by an MPI launcher (" << name << " is set)";
  EXPECT_EQ(make_communicator("auto")->name(), "local");
}

// Here (no GPU) nccl must fail with a message that says why and what to use instead.
TEST(MakeCommunicator, NcclWithoutGpuOrWithoutNcclSaysUseMpi) {
  const std::string message = error_of([] { make_communicator("nccl"); });
  if (!nccl_available_in_build()) {
    EXPECT_NE(message.find("this build has no NCCL communicator"), std::string::npos) << message;
  } else {
    if (message.empty()) GTEST_SKIP() << "this machine has a GPU: the nccl communicator was created";
    EXPECT_NE(message.find("--comm nccl needs a CUDA GPU on every rank; cudaGetDeviceCount: "), std::string::npos)
        << message;
  }
  EXPECT_NE(message.find("Use --comm mpi."), std::string::npos) << message;
  std::printf("make_communicator(\"nccl\") here: %s\n", message.c_str());
}

}  // namespace
}  // namespace mops
