// mops_comm_bench: allreduce_sum and broadcast bandwidth of a communicator, printed like
// nccl-tests. Sizes double from --min-bytes to --max-bytes; at each size every rank checks
// one call's result (#wrong: elements wrong, over all ranks), then times --warmup calls it
// discards and --iters calls it keeps.
//   time  = mean wall time per call on a rank, the slowest rank's (us)
//   algbw = size / time;  busbw = algbw * 2(n-1)/n for allreduce (what each link carries in
//   a ring), = algbw for broadcast (nccl-tests' conventions), in GB/s (1e9 bytes).
// Only rank 0 prints. A benchmark: it reports, and never passes or fails on time.
//   mpirun -np R build/mops_comm_bench [--comm auto|local|mpi|nccl] [--min-bytes 8]
//                                      [--max-bytes 64M] [--iters 20] [--warmup 5]
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "communicator.h"
#include "errors.h"

namespace mops {
namespace {

struct Options {
  std::string comm = "auto";
  size_t min_bytes = 8;
  size_t max_bytes = size_t(64) << 20;
  int iters = 20;
  int warmup = 5;
};

const char* kUsage =
    "usage: mops_comm_bench [--comm auto|local|mpi|nccl] [--min-bytes 8] [--max-bytes 64M]\n"
    "                       [--iters 20] [--warmup 5]   (sizes take K, M, G = 2^10, 2^20, 2^30)\n";

// The number at the start of `text` and what follows it.
std::pair<unsigned long long, std::string> leading_number(const std::string& name, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long number = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str() || errno != 0 || text[0] == '-')
    throw std::invalid_argument(name + ": '" + text + "' is not a non-negative number");
  return {number, std::string(end)};
}

// "64M" -> 67108864.
size_t parse_bytes(const std::string& name, const std::string& text) {
  const auto [number, suffix] = leading_number(name, text);
  if (suffix.empty()) return number;
  if (suffix == "K") return number << 10;
  if (suffix == "M") return number << 20;
  if (suffix == "G") return number << 30;
  throw std::invalid_argument(name + ": unknown size suffix in '" + text + "' (use K, M or G)");
}

int parse_count(const std::string& name, const std::string& text) {
  const auto [number, suffix] = leading_number(name, text);
  if (!suffix.empty() || number > INT_MAX) throw std::invalid_argument(name + ": '" + text + "' is not a count");
  return int(number);
}

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument(name + " needs a value (or is unknown)");
    const std::string value = argv[++i];
    if (name == "--comm") options.comm = value;
    else if (name == "--min-bytes") options.min_bytes = parse_bytes(name, value);
    else if (name == "--max-bytes") options.max_bytes = parse_bytes(name, value);
    else if (name == "--iters") options.iters = parse_count(name, value);
    else if (name == "--warmup") options.warmup = parse_count(name, value);
    else throw std::invalid_argument("unknown option " + name);
  }
  if (options.min_bytes < 8 || options.min_bytes % 8 != 0)
    throw std::invalid_argument("--min-bytes must be a multiple of 8 (one double), at least 8");
  if (options.max_bytes < options.min_bytes) throw std::invalid_argument("--max-bytes is below --min-bytes");
  if (options.iters < 1) throw std::invalid_argument("--iters must be at least 1");
  return options;
}

// The largest of one value per rank, through allreduce_sum: each rank fills its own slot.
double max_over_ranks(Communicator& comm, double value) {
  std::vector<double> slots(size_t(comm.size()), 0.0);
  slots[size_t(comm.rank())] = value;
  comm.allreduce_sum(slots.data(), slots.size());
  return *std::max_element(slots.begin(), slots.end());
}

// Seconds per call of `call`, mean over the kept iterations, of the slowest rank.
double seconds_per_call(Communicator& comm, const Options& options, const std::function<void()>& call) {
  for (int i = 0; i < options.warmup; ++i) call();
  comm.barrier();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < options.iters; ++i) call();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return max_over_ranks(comm, seconds / options.iters);
}

struct Measurement {
  double seconds = 0;
  double wrong = 0;  // elements (allreduce) or bytes (broadcast) wrong, summed over ranks
};

Measurement measure_allreduce(Communicator& comm, const Options& options, std::vector<double>& values) {
  const double n = comm.size();
  std::fill(values.begin(), values.end(), comm.rank() + 1.0);
  comm.allreduce_sum(values.data(), values.size());
  double wrong = double(std::count_if(values.begin(), values.end(), [&](double v) { return v != n * (n + 1) / 2; }));
  comm.allreduce_sum(&wrong, 1);
  std::fill(values.begin(), values.end(), 0.0);  // sums of zeros stay finite however many calls
  return {seconds_per_call(comm, options, [&] { comm.allreduce_sum(values.data(), values.size()); }), wrong};
}

Measurement measure_broadcast(Communicator& comm, const Options& options, std::vector<unsigned char>& bytes) {
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = comm.rank() == 0 ? (unsigned char)(i * 13) : 0;
  comm.broadcast(bytes.data(), bytes.size(), 0);
  double wrong = 0;
  for (size_t i = 0; i < bytes.size(); ++i) wrong += bytes[i] != (unsigned char)(i * 13);
  comm.allreduce_sum(&wrong, 1);
  return {seconds_per_call(comm, options, [&] { comm.broadcast(bytes.data(), bytes.size(), 0); }), wrong};
}

void print_header(const Communicator& comm, const Options& options) {
  char host[256] = "?";
  gethostname(host, sizeof host - 1);
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  std::printf("# mops_comm_bench: comm %s, ranks %d, host %s (%u cores), %s, %d iters after %d warmup\n",
              comm.name().c_str(), comm.size(), host, std::thread::hardware_concurrency(), date, options.iters,
              options.warmup);
  std::printf("# time: mean per call, slowest rank; algbw = size/time; busbw = algbw*2(n-1)/n (allreduce), "
              "algbw (broadcast)\n");
  std::printf("#                          allreduce_sum (double, sum)                broadcast (bytes, root 0)\n");
  std::printf("#       size      count      time     algbw     busbw  #wrong       time     algbw     busbw  #wrong\n");
  std::printf("#        (B) (elements)      (us)    (GB/s)    (GB/s)               (us)    (GB/s)    (GB/s)\n");
}

void print_row(const Communicator& comm, size_t bytes, const Measurement& allreduce, const Measurement& broadcast) {
  const double n = comm.size();
  const double reduce_algbw = double(bytes) / allreduce.seconds / 1e9;
  const double broadcast_algbw = double(bytes) / broadcast.seconds / 1e9;
  std::printf("%12zu %10zu %9.2f %9.3f %9.3f %7.0f  %9.2f %9.3f %9.3f %7.0f\n", bytes, bytes / sizeof(double),
              allreduce.seconds * 1e6, reduce_algbw, reduce_algbw * 2 * (n - 1) / n, allreduce.wrong,
              broadcast.seconds * 1e6, broadcast_algbw, broadcast_algbw, broadcast.wrong);
  std::fflush(stdout);
}

void run(Communicator& comm, const Options& options) {
  if (comm.rank() == 0) print_header(comm, options);
  for (size_t bytes = options.min_bytes; bytes <= options.max_bytes; bytes *= 2) {
    std::vector<double> values(bytes / sizeof(double));
    std::vector<unsigned char> raw(bytes);
    const Measurement allreduce = measure_allreduce(comm, options, values);
    const Measurement broadcast = measure_broadcast(comm, options, raw);
    if (comm.rank() == 0) print_row(comm, bytes, allreduce, broadcast);
  }
}

}  // namespace
}  // namespace mops

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::printf("%s", mops::kUsage);
    return 0;
  }
  mops::Options options;
  try {
    options = mops::parse_options(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "mops_comm_bench: %s\n%s", error.what(), mops::kUsage);
    return 2;
  }
  std::unique_ptr<mops::Communicator> comm;
  try {
    comm = mops::make_communicator(options.comm);
    mops::run(*comm, options);
  } catch (const mops::Error& error) {
    std::fprintf(stderr, "mops_comm_bench: %s\n", error.what());
    if (comm && comm->size() > 1) comm->abort(1);  // the other ranks would wait forever
    return 1;
  }
  return 0;
}
