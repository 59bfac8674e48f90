// Federated client partitioning; the algorithm is described in partition.h.
#include "partition.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "errors.h"
#include "seeded_random.h"

namespace mops {
namespace {

// Independent random streams, one per step, so one step's draws never shift another's.
enum Stream : uint64_t { kRankingStream = 1, kMixStream, kPoolStream, kOrderStream };

// Splits `total` into integer parts proportional to `weights` (non-negative, not all zero
// unless total is 0) by largest remainder: floors first, then one more to the largest
// fractional parts, ties to the lower index. The parts sum to exactly `total`.
std::vector<size_t> apportion(const std::vector<double>& weights, size_t total) {
  std::vector<size_t> parts(weights.size(), 0);
  if (total == 0) return parts;
  const double sum = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<double> remainder(weights.size());
  size_t assigned = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const double share = weights[i] / sum * double(total);
    parts[i] = size_t(std::floor(share));
    remainder[i] = share - double(parts[i]);
    assigned += parts[i];
  }
  std::vector<size_t> order(weights.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return remainder[a] > remainder[b]; });
  for (size_t k = 0; assigned + k < total; ++k) ++parts[order[k % order.size()]];
  return parts;
}

// Sizes by rank (index 0 = rank 1, the largest): weights rank^(-exponent); the smallest ranks
// whose proportional share would fall below `min` get exactly `min`, the others get `min` plus
// their share of what is left, so the sizes sum to exactly n.
std::vector<size_t> sizes_by_rank(size_t n, size_t clients, size_t min, double exponent) {
  std::vector<double> weight(clients);
  for (size_t r = 0; r < clients; ++r) weight[r] = std::pow(double(r + 1), -exponent);
  std::vector<double> prefix(clients + 1, 0.0);
  for (size_t r = 0; r < clients; ++r) prefix[r + 1] = prefix[r] + weight[r];
  size_t unpinned = clients;  // ranks [0, unpinned) get more than the minimum
  auto free_records = [&](size_t k) { return double(n - (clients - k) * min); };
  while (unpinned > 1 &&
         weight[unpinned - 1] * free_records(unpinned) < double(min) * prefix[unpinned])
    --unpinned;
  std::vector<double> extra(unpinned);
  for (size_t r = 0; r < unpinned; ++r)
    extra[r] = std::max(0.0, weight[r] / prefix[unpinned] * free_records(unpinned) - double(min));
  std::vector<size_t> sizes = apportion(extra, n - clients * min);
  sizes.resize(clients, 0);
  for (auto& size : sizes) size += min;
  return sizes;
}

// Client sizes: sizes by rank, handed out by a seeded random ranking of the clients.
std::vector<size_t> client_sizes(size_t n, const PartitionOptions& options) {
  const size_t clients = size_t(options.clients);
  const auto by_rank = sizes_by_rank(n, clients, size_t(options.min_examples), options.size_exponent);
  std::vector<size_t> rank(clients);
  std::iota(rank.begin(), rank.end(), size_t(0));
  Xoshiro256(options.seed, kRankingStream).shuffle(rank);
  std::vector<size_t> sizes(clients);
  for (size_t c = 0; c < clients; ++c) sizes[c] = by_rank[rank[c]];
  return sizes;
}

// Dirichlet(alpha, ..., alpha) draw over `tasks`, as weights (not normalised) from log-Gammas.
std::vector<double> dirichlet_mix(double alpha, size_t tasks, Xoshiro256& random) {
  std::vector<double> log_draw(tasks);
  for (auto& value : log_draw) value = random.log_gamma(alpha);
  const double top = *std::max_element(log_draw.begin(), log_draw.end());
  std::vector<double> mix(tasks);
  for (size_t t = 0; t < tasks; ++t) mix[t] = std::exp(log_draw[t] - top);
  return mix;
}

// Equal weights on a random subset of `chosen` tasks, zero elsewhere.
std::vector<double> subset_mix(size_t chosen, size_t tasks, Xoshiro256& random) {
  std::vector<size_t> order(tasks);
  std::iota(order.begin(), order.end(), size_t(0));
  random.shuffle(order);
  std::vector<double> mix(tasks, 0.0);
  for (size_t i = 0; i < chosen; ++i) mix[order[i]] = 1.0;
  return mix;
}

// Task weights of every client for the scheme in `options` (step 2).
std::vector<std::vector<double>> task_mixes(const std::vector<size_t>& supply, const PartitionOptions& options) {
  Xoshiro256 random(options.seed, kMixStream);
  std::vector<std::vector<double>> mixes(size_t(options.clients));
  for (auto& mix : mixes) {
    switch (options.scheme) {
      case PartitionScheme::kDirichlet: mix = dirichlet_mix(options.alpha, supply.size(), random); break;
      case PartitionScheme::kPathological:
        mix = subset_mix(size_t(options.tasks_per_client), supply.size(), random);
        break;
      case PartitionScheme::kIid: mix.assign(supply.begin(), supply.end()); break;
    }
  }
  return mixes;
}

// Record indices of each task, shuffled; clients take records from the back.
std::vector<std::vector<size_t>> task_pools(const std::vector<int>& task_of_record, int num_tasks, uint64_t seed) {
  std::vector<std::vector<size_t>> pools(static_cast<size_t>(num_tasks));
  for (size_t i = 0; i < task_of_record.size(); ++i) pools[size_t(task_of_record[i])].push_back(i);
  Xoshiro256 random(seed, kPoolStream);
  for (auto& pool : pools) random.shuffle(pool);
  return pools;
}

// Moves up to `count` records from the back of `pool` to `client`; returns how many moved.
size_t take(std::vector<size_t>& pool, size_t count, std::vector<size_t>& client) {
  const size_t moved = std::min(count, pool.size());
  client.insert(client.end(), pool.end() - std::ptrdiff_t(moved), pool.end());
  pool.resize(pool.size() - moved);
  return moved;
}

// One client's records: its desired count per task as far as the pools allow, then the
// shortfall from the tasks it weights most (ties: most records left); ascending indices.
std::vector<size_t> fill_client(size_t size, const std::vector<double>& mix, std::vector<std::vector<size_t>>& pools) {
  std::vector<size_t> records;
  const auto desired = apportion(mix, size);
  for (size_t t = 0; t < pools.size(); ++t) take(pools[t], desired[t], records);
  std::vector<size_t> fallback(pools.size());
  std::iota(fallback.begin(), fallback.end(), size_t(0));
  std::stable_sort(fallback.begin(), fallback.end(), [&](size_t a, size_t b) {
    if (mix[a] != mix[b]) return mix[a] > mix[b];
    return pools[a].size() > pools[b].size();
  });
  for (size_t t : fallback) take(pools[t], size - records.size(), records);
  std::sort(records.begin(), records.end());
  return records;
}

// Throws on inputs outside their ranges, naming the option and the allowed range.
void check_inputs(const std::vector<int>& task_of_record, int num_tasks, const PartitionOptions& options) {
  MOPS_CHECK(!task_of_record.empty(), "no training records to partition among clients");
  for (size_t i = 0; i < task_of_record.size(); ++i)
    MOPS_CHECK(task_of_record[i] >= 0 && task_of_record[i] < num_tasks,
               "record " << i << " has task index " << task_of_record[i] << ", outside [0, " << num_tasks << ")");
  MOPS_CHECK(options.clients >= 1, "--clients = " << options.clients << " must be at least 1");
  MOPS_CHECK(options.min_examples >= 1,
             "--min-client-examples = " << options.min_examples << " must be at least 1");
  MOPS_CHECK(std::isfinite(options.size_exponent) && options.size_exponent >= 0,
             "--size-exponent = " << options.size_exponent << " must be a number >= 0 (0 = equal client sizes)");
  if (options.scheme == PartitionScheme::kDirichlet)
    MOPS_CHECK(std::isfinite(options.alpha) && options.alpha > 0,
               "--alpha = " << options.alpha << " must be a number > 0 (smaller = more skewed task mixes)");
  if (options.scheme == PartitionScheme::kPathological)
    MOPS_CHECK(options.tasks_per_client >= 1 && options.tasks_per_client <= num_tasks,
               "--tasks-per-client = " << options.tasks_per_client << " is outside [1, " << num_tasks
                                       << "] (the number of tasks)");
  MOPS_CHECK(uint64_t(options.clients) * uint64_t(options.min_examples) <= task_of_record.size(),
             "cannot give " << options.clients << " clients at least " << options.min_examples
                            << " records each from " << task_of_record.size()
                            << " records: lower --clients or --min-client-examples");
}

}  // namespace

PartitionScheme parse_partition_scheme(const std::string& name) {
  if (name == "dirichlet") return PartitionScheme::kDirichlet;
  if (name == "pathological") return PartitionScheme::kPathological;
  if (name == "iid") return PartitionScheme::kIid;
  MOPS_FAIL("unknown partition scheme '" << name << "': expected dirichlet, pathological or iid");
}

Partition partition_records(const std::vector<int>& task_of_record, int num_tasks, const PartitionOptions& options) {
  check_inputs(task_of_record, num_tasks, options);
  auto pools = task_pools(task_of_record, num_tasks, options.seed);
  std::vector<size_t> supply(pools.size());
  for (size_t t = 0; t < pools.size(); ++t) supply[t] = pools[t].size();
  const auto sizes = client_sizes(task_of_record.size(), options);
  const auto mixes = task_mixes(supply, options);
  std::vector<size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), size_t(0));
  Xoshiro256(options.seed, kOrderStream).shuffle(order);
  Partition partition;
  partition.clients.resize(sizes.size());
  for (size_t c : order) partition.clients[c] = fill_client(sizes[c], mixes[c], pools);
  return partition;
}

std::string partition_table(const Partition& partition, const std::vector<int>& task_of_record,
                            const std::vector<std::string>& task_names) {
  const size_t tasks = task_names.size();
  // counts[c] = {size, records of task 0, task 1, ...}; the last row is the total.
  std::vector<std::vector<size_t>> counts(partition.clients.size() + 1, std::vector<size_t>(tasks + 1, 0));
  for (size_t c = 0; c < partition.clients.size(); ++c) {
    for (size_t record : partition.clients[c]) {
      MOPS_CHECK(record < task_of_record.size(), "client " << c << " holds record " << record << " of only "
                                                          << task_of_record.size());
      const int task = task_of_record[record];
      MOPS_CHECK(task >= 0 && size_t(task) < tasks,
                 "record " << record << " has task index " << task << ", outside [0, " << tasks << ")");
      for (size_t row : {c, partition.clients.size()}) {
        ++counts[row][0];
        ++counts[row][size_t(task) + 1];
      }
    }
  }
  std::vector<std::string> header = {"client", "size"};
  header.insert(header.end(), task_names.begin(), task_names.end());
  std::vector<size_t> width(header.size());
  width[0] = std::max(header[0].size(), std::string("total").size());
  for (size_t col = 1; col < header.size(); ++col)
    width[col] = std::max(header[col].size(), std::to_string(counts.back()[col - 1]).size());
  std::ostringstream out;
  auto row = [&](const std::string& label, const std::vector<std::string>& cells) {
    out << std::setw(int(width[0])) << label;
    for (size_t col = 0; col < cells.size(); ++col) out << "  " << std::setw(int(width[col + 1])) << cells[col];
    out << "\n";
  };
  row(header[0], std::vector<std::string>(header.begin() + 1, header.end()));
  for (size_t r = 0; r < counts.size(); ++r) {
    std::vector<std::string> cells;
    for (size_t value : counts[r]) cells.push_back(std::to_string(value));
    row(r + 1 < counts.size() ? std::to_string(r) : "total", cells);
  }
  return out.str();
}

}  // namespace mops
