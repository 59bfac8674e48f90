// Communicators across ranks, run by ctest under mpirun with 2 and 4 ranks (label mpi); with
// MOPS_TEST_COMM=nccl the same tests run on the NCCL communicator (label gpu), and skip when
// the machine has no GPU. Every rank runs every test; checks hold on every rank.
// What holds for sums of doubles (checked below):
//   - the result is bitwise identical on every rank and from one call to the next;
//   - with 2 ranks it is bitwise the serial sum x0 + x1 (IEEE addition is commutative);
//   - with more ranks the summation order is the library's (tree, ring), so it can differ
//     from the serial sum ((x0 + x1) + x2) + x3 in the last bits: counted and printed, and
//     checked against the rounding-error bound only;
//   - when every element has one non-zero part (each client in its own slot), the sum is
//     exact for any number of ranks, so a serial sum over the slots afterwards is bitwise the
//     same as in one process. That is the way to make FedAvg independent of the rank count.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "communicator.h"
#include "errors.h"

namespace mops {
namespace {

std::string communicator_kind() {
  const char* kind = std::getenv("MOPS_TEST_COMM");
  return kind ? kind : "mpi";
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Rank `part`'s value for element i: in [-2^15, 2^15), with mantissas that do not line up,
// so that the summation order shows in the last bits. Any rank can compute any rank's part.
double part_value(int part, size_t i) {
  const uint64_t bits = splitmix64((uint64_t(part) << 40) ^ i);
  const double unit = double(bits >> 11) * 0x1.0p-52 - 1.0;  // [-1, 1)
  const int exponent = int(bits & 31) - 16;
  return std::ldexp(unit, exponent);
}

std::vector<double> parts_of(int part, size_t count) {
  std::vector<double> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = part_value(part, i);
  return values;
}

// ((x0 + x1) + x2) + ... in rank order, as one process would add the parts.
std::vector<double> serial_sum(int parts, size_t count) {
  std::vector<double> sum = parts_of(0, count);
  for (int part = 1; part < parts; ++part)
    for (size_t i = 0; i < count; ++i) sum[i] += part_value(part, i);
  return sum;
}

size_t bitwise_differences(const std::vector<double>& a, const std::vector<double>& b) {
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += std::memcmp(&a[i], &b[i], sizeof(double)) != 0;
  return differ;
}

class CommunicatorAcrossRanks : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      comm_ = make_communicator(communicator_kind());
    } catch (const Error& error) {
      if (std::string(error.what()).find("needs a CUDA GPU") != std::string::npos) GTEST_SKIP() << error.what();
      throw;
    }
  }

  // Rank 0's copy of `values`, as every rank received it.
  std::vector<double> rank0_copy(std::vector<double> values) {
    comm_->broadcast(values.data(), values.size() * sizeof(double), 0);
    return values;
  }

  std::unique_ptr<Communicator> comm_;
};

TEST_F(CommunicatorAcrossRanks, KnowsItsRankAndSize) {
  int world_rank = -1, world_size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  EXPECT_EQ(comm_->rank(), world_rank);
  EXPECT_EQ(comm_->size(), world_size);
  EXPECT_EQ(comm_->name(), communicator_kind());
  EXPECT_EQ(make_communicator("auto")->name(), "mpi");  // mpirun's environment says: MPI
}

TEST_F(CommunicatorAcrossRanks, SumsEqualTheClosedFormOnEveryRank) {
  const double n = comm_->size();
  // Element i of rank r is (r + 1) * (i % 1000 + 1): sums are integers, exact in any order.
  for (const size_t count : {size_t(0), size_t(1), size_t(7), size_t(1) << 20, size_t(1000)}) {
    std::vector<double> values(count);
    for (size_t i = 0; i < count; ++i) values[i] = (comm_->rank() + 1) * double(i % 1000 + 1);
    comm_->allreduce_sum(values.data(), count);
    size_t wrong = 0, first_wrong = count;
    for (size_t i = 0; i < count; ++i) {
      if (values[i] == n * (n + 1) / 2 * double(i % 1000 + 1)) continue;
      if (wrong++ == 0) first_wrong = i;
    }
    EXPECT_EQ(wrong, 0u) << "count " << count << ", first wrong element " << first_wrong;
  }
}

TEST_F(CommunicatorAcrossRanks, CountsExactlyThePayloadBytes) {
  std::vector<double> values(5, 1.0);
  std::vector<char> bytes(13, 'x');
  for (int i = 0; i < 3; ++i) comm_->allreduce_sum(values.data(), values.size());
  comm_->allreduce_sum(values.data(), 0);
  comm_->broadcast(bytes.data(), bytes.size(), 0);
  comm_->broadcast(bytes.data(), bytes.size(), comm_->size() - 1);
  comm_->barrier();
  EXPECT_EQ(comm_->bytes_reduced(), 120u);  // 3 calls x 5 doubles x 8 bytes, on every rank
  EXPECT_EQ(comm_->bytes_broadcast(), 26u);
  EXPECT_GT(comm_->seconds_communicating(), 0.0);
}

TEST_F(CommunicatorAcrossRanks, BroadcastsFromTheFirstAndTheLastRank) {
  for (const int root : {0, comm_->size() - 1}) {
    for (const size_t bytes : {size_t(0), size_t(1), size_t(1000), size_t(3) << 20}) {
      std::vector<unsigned char> data(bytes);
      for (size_t i = 0; i < bytes; ++i) data[i] = (unsigned char)(comm_->rank() == root ? i * 7 + root : 0xEE);
      comm_->broadcast(data.data(), bytes, root);
      size_t wrong = 0;
      for (size_t i = 0; i < bytes; ++i) wrong += data[i] != (unsigned char)(i * 7 + root);
      EXPECT_EQ(wrong, 0u) << bytes << " bytes from root " << root;
    }
  }
}

TEST_F(CommunicatorAcrossRanks, RejectsRootOutsideTheJob) {
  char byte = 0;
  try {
    comm_->broadcast(&byte, 1, comm_->size());
    ADD_FAILURE() << "broadcast from root " << comm_->size() << " did not throw";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("broadcast from root " + std::to_string(comm_->size())),
              std::string::npos)
        << error.what();
  }
}

// Every rank leaves a file before the barrier, the last rank late; after the barrier every
// rank must see all the files. A barrier that did not wait would miss the last one.
TEST_F(CommunicatorAcrossRanks, BarrierWaitsForEveryRank) {
  char dir[64] = "/tmp/mops_barrier_test_XXXXXX";
  if (comm_->rank() == 0) {
    ASSERT_NE(mkdtemp(dir), nullptr);
  }
  comm_->broadcast(dir, sizeof dir, 0);
  const std::filesystem::path path(dir);
  if (comm_->rank() == comm_->size() - 1) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::ofstream(path / ("arrived_" + std::to_string(comm_->rank())));
  comm_->barrier();
  for (int r = 0; r < comm_->size(); ++r)
    EXPECT_TRUE(std::filesystem::exists(path / ("arrived_" + std::to_string(r)))) << "rank " << r << " missing";
  comm_->barrier();
  if (comm_->rank() == 0) std::filesystem::remove_all(path);
}

TEST_F(CommunicatorAcrossRanks, SumIsBitwiseIdenticalOnEveryRankAndAcrossRepeats) {
  for (const size_t count : {size_t(3), size_t(1000), size_t(1) << 20}) {
    std::vector<double> first = parts_of(comm_->rank(), count), second = first;
    comm_->allreduce_sum(first.data(), count);
    comm_->allreduce_sum(second.data(), count);
    EXPECT_EQ(bitwise_differences(first, second), 0u) << "count " << count << ": repeat differs";
    EXPECT_EQ(bitwise_differences(first, rank0_copy(first)), 0u) << "count " << count << ": rank 0 differs";
  }
}

// Any order of adding n parts is within (n - 1) u sum|x_r| of the exact sum (u = 2^-53), so
// two orders differ by at most 2 (n - 1) u sum|x_r|: the scale used here, not |sum|, which
// cancellation can make arbitrarily small.
TEST_F(CommunicatorAcrossRanks, SumAgainstTheSerialSum) {
  const int n = comm_->size();
  for (const size_t count : {size_t(3), size_t(1000), size_t(1) << 20}) {
    std::vector<double> values = parts_of(comm_->rank(), count);
    comm_->allreduce_sum(values.data(), count);
    const std::vector<double> serial = serial_sum(n, count);
    const size_t differ = bitwise_differences(values, serial);
    double max_scaled = 0;  // |allreduce - serial| / sum_r |x_r|, in units of u
    for (size_t i = 0; i < count; ++i) {
      double magnitude = 0;
      for (int part = 0; part < n; ++part) magnitude += std::abs(part_value(part, i));
      max_scaled = std::max(max_scaled, std::abs(values[i] - serial[i]) / magnitude / 0x1.0p-53);
    }
    if (n <= 2) {
      EXPECT_EQ(differ, 0u) << "count " << count;
    }
    EXPECT_LE(max_scaled, 2.0 * (n - 1)) << "count " << count;
    if (comm_->rank() == 0)
      std::printf("%s, %d ranks, %zu doubles: %zu differ bitwise from the serial sum; max difference "
                  "%.2f u sum|x_r| (bound %d)\n",
                  comm_->name().c_str(), n, count, differ, max_scaled, 2 * (n - 1));
  }
}

// 10 clients spread over the ranks; client c's vector goes into slot c of a (clients x count)
// buffer, zeros elsewhere. The allreduce adds each element's one value to zeros, which is
// exact, and the serial sum over slots afterwards is bitwise the one-process result.
TEST_F(CommunicatorAcrossRanks, DisjointSlotsGiveTheSerialSumForAnyRankCount) {
  const int clients = 10;
  const size_t count = 4099;
  std::vector<double> slots(clients * count, 0.0);
  for (int c = comm_->rank(); c < clients; c += comm_->size()) {
    const std::vector<double> mine = parts_of(c, count);
    std::copy(mine.begin(), mine.end(), slots.begin() + c * count);
  }
  comm_->allreduce_sum(slots.data(), slots.size());
  std::vector<double> sum(slots.begin(), slots.begin() + count);
  for (int c = 1; c < clients; ++c)
    for (size_t i = 0; i < count; ++i) sum[i] += slots[c * count + i];
  EXPECT_EQ(bitwise_differences(sum, serial_sum(clients, count)), 0u);
}

}  // namespace
}  // namespace mops
