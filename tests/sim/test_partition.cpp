// Federated client partitioning: coverage, sizes, task skew per scheme, determinism (with a
// golden stream check), input errors and the summary table.
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <numeric>
#include <set>
#include <sstream>

#include "errors.h"
#include "partition.h"

namespace mops {
namespace {

// Task of every record for tasks with the given supplies, interleaved round-robin.
std::vector<int> records_of(const std::vector<int>& supply) {
  std::vector<int> task_of_record;
  std::vector<int> left = supply;
  for (bool any = true; any;) {
    any = false;
    for (size_t t = 0; t < left.size(); ++t) {
      if (left[t] == 0) continue;
      task_of_record.push_back(int(t));
      --left[t];
      any = true;
    }
  }
  return task_of_record;
}

// 7 tasks with uneven supplies, 50..400 records each (1435 in all).
const std::vector<int> kUnevenSupply = {50, 400, 120, 310, 75, 220, 260};

PartitionOptions options_for(PartitionScheme scheme, int clients, uint64_t seed = 7) {
  PartitionOptions o;
  o.scheme = scheme;
  o.clients = clients;
  o.seed = seed;
  return o;
}

// Records per task of each client.
std::vector<std::vector<int>> task_counts(const Partition& p, const std::vector<int>& task_of_record, int tasks) {
  std::vector<std::vector<int>> counts(p.clients.size(), std::vector<int>(size_t(tasks), 0));
  for (size_t c = 0; c < p.clients.size(); ++c)
    for (size_t record : p.clients[c]) ++counts[c][size_t(task_of_record[record])];
  return counts;
}

// Mean over clients of the share of each client's largest task.
double mean_largest_share(const Partition& p, const std::vector<int>& task_of_record, int tasks) {
  double sum = 0;
  for (const auto& counts : task_counts(p, task_of_record, tasks)) {
    const int size = std::accumulate(counts.begin(), counts.end(), 0);
    sum += double(*std::max_element(counts.begin(), counts.end())) / size;
  }
  return sum / double(p.clients.size());
}

std::vector<size_t> sizes_of(const Partition& p) {
  std::vector<size_t> sizes;
  for (const auto& client : p.clients) sizes.push_back(client.size());
  return sizes;
}

// The message of the mops::Error that `body` throws ("" if none).
template <typename F>
std::string error_of(F body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PartitionCoverage, EveryRecordLandsOnExactlyOneClientUnderEveryScheme) {
  const auto tasks = records_of(kUnevenSupply);
  for (auto scheme : {PartitionScheme::kDirichlet, PartitionScheme::kPathological, PartitionScheme::kIid}) {
    const auto p = partition_records(tasks, 7, options_for(scheme, 40));
    ASSERT_EQ(p.clients.size(), 40u);
    std::vector<int> seen(tasks.size(), 0);
    for (const auto& client : p.clients) {
      EXPECT_TRUE(std::is_sorted(client.begin(), client.end()));
      for (size_t record : client) {
        ASSERT_LT(record, tasks.size());
        ++seen[record];
      }
    }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), std::ptrdiff_t(tasks.size())) << int(scheme);
  }
}

TEST(PartitionSizes, SumExactlyAndGiveEveryClientTheMinimum) {
  const auto tasks = records_of(kUnevenSupply);
  for (int min_examples : {1, 5, 20, 35}) {  // 35 * 41 = 1435: every client exactly the minimum
    auto o = options_for(PartitionScheme::kDirichlet, 41);
    o.min_examples = min_examples;
    const auto sizes = sizes_of(partition_records(tasks, 7, o));
    EXPECT_EQ(std::accumulate(sizes.begin(), sizes.end(), size_t(0)), tasks.size());
    EXPECT_GE(*std::min_element(sizes.begin(), sizes.end()), size_t(min_examples));
  }
}

TEST(PartitionSizes, PowerLawMakesTheLargestClientSeveralTimesTheSmallest) {
  const auto tasks = records_of(kUnevenSupply);
  auto o = options_for(PartitionScheme::kIid, 20);
  o.size_exponent = 1.0;
  const auto sizes = sizes_of(partition_records(tasks, 7, o));
  const size_t largest = *std::max_element(sizes.begin(), sizes.end());
  const size_t smallest = *std::min_element(sizes.begin(), sizes.end());
  EXPECT_GE(largest, 5 * smallest);
  // Ranks 1 and 2 of 1/r: the largest client is about twice the second largest.
  auto sorted = sizes;
  std::sort(sorted.rbegin(), sorted.rend());
  EXPECT_NEAR(double(sorted[0]) / double(sorted[1]), 2.0, 0.05);
}

TEST(PartitionSizes, ExponentZeroGivesSizesWithinOneRecord) {
  const auto tasks = records_of(kUnevenSupply);
  auto o = options_for(PartitionScheme::kDirichlet, 33);
  o.size_exponent = 0;
  const auto sizes = sizes_of(partition_records(tasks, 7, o));
  EXPECT_LE(*std::max_element(sizes.begin(), sizes.end()) - *std::min_element(sizes.begin(), sizes.end()), 1u);
}

TEST(PartitionSkew, DirichletWithSmallAlphaConcentratesEachClientOnFewTasks) {
  const auto tasks = records_of(kUnevenSupply);
  auto o = options_for(PartitionScheme::kDirichlet, 20);
  o.size_exponent = 0;
  o.alpha = 0.1;
  EXPECT_GT(mean_largest_share(partition_records(tasks, 7, o), tasks, 7), 0.6);
  o.alpha = 100;  // large alpha: near-even mixes, skewed only by the leftovers of uneven supplies
  EXPECT_LT(mean_largest_share(partition_records(tasks, 7, o), tasks, 7), 0.55);
}

TEST(PartitionSkew, IidClientsFollowTheGlobalTaskProportions) {
  const auto tasks = records_of(kUnevenSupply);
  auto o = options_for(PartitionScheme::kIid, 10);
  o.size_exponent = 0;
  const double global_largest = 400.0 / double(tasks.size());
  EXPECT_NEAR(mean_largest_share(partition_records(tasks, 7, o), tasks, 7), global_largest, 0.1);
}

TEST(PartitionSkew, PathologicalClientsDrawFromTheirTasksOnly) {
  // 10 tasks of 100 records, 20 clients of 50, 2 tasks each: every desired count is 25 and every
  // pool stays a multiple of 25, so supply always covers whole demands and no client needs a
  // third task, even when a popular task runs out and the shortfall moves elsewhere.
  const auto tasks = records_of(std::vector<int>(10, 100));
  auto o = options_for(PartitionScheme::kPathological, 20);
  o.tasks_per_client = 2;
  o.size_exponent = 0;
  for (const auto& counts : task_counts(partition_records(tasks, 10, o), tasks, 10))
    EXPECT_LE(std::count_if(counts.begin(), counts.end(), [](int n) { return n > 0; }), 2);
  o.tasks_per_client = 10;  // every task allowed: 5 records of each
  for (const auto& counts : task_counts(partition_records(tasks, 10, o), tasks, 10))
    EXPECT_EQ(counts, std::vector<int>(10, 5));
}

TEST(PartitionSkew, ShortfallGoesToTheClientsOwnOtherTaskFirst) {
  // Task 0 is scarce: clients that chose it fill the shortfall from their other task, not
  // from whichever task has the most records left, so nobody ends up with a third task.
  const auto tasks = records_of({10, 145, 145});
  auto o = options_for(PartitionScheme::kPathological, 10);
  o.tasks_per_client = 2;
  o.size_exponent = 0;
  for (const auto& counts : task_counts(partition_records(tasks, 3, o), tasks, 3))
    EXPECT_LE(std::count_if(counts.begin(), counts.end(), [](int n) { return n > 0; }), 2);
}

TEST(PartitionDeterminism, SameSeedSamePartitionAndOtherSeedsDiffer) {
  const auto tasks = records_of(kUnevenSupply);
  for (auto scheme : {PartitionScheme::kDirichlet, PartitionScheme::kPathological, PartitionScheme::kIid}) {
    const auto a = partition_records(tasks, 7, options_for(scheme, 30, 11));
    const auto b = partition_records(tasks, 7, options_for(scheme, 30, 11));
    const auto c = partition_records(tasks, 7, options_for(scheme, 30, 12));
    EXPECT_EQ(a.clients, b.clients);
    EXPECT_NE(a.clients, c.clients);
  }
}

// Fixed input and seed: these values come from the generator (SplitMix64 + xoshiro256**), the
// samplers and the algorithm; any change to one of them changes them.
TEST(PartitionDeterminism, GoldenSizesAndRecordsForAFixedSeed) {
  const auto tasks = records_of({30, 60, 90, 120});
  auto o = options_for(PartitionScheme::kDirichlet, 10, 2024);
  o.alpha = 0.5;
  const auto p = partition_records(tasks, 4, o);
  const auto sizes = sizes_of(p);
  EXPECT_EQ(std::vector<size_t>(sizes.begin(), sizes.begin() + 5), (std::vector<size_t>{15, 51, 13, 34, 102}));
  EXPECT_EQ(std::vector<size_t>(p.clients[0].begin(), p.clients[0].begin() + 5),
            (std::vector<size_t>{30, 66, 70, 84, 106}));
}

TEST(PartitionErrors, RejectOptionsOutsideTheirRanges) {
  const auto tasks = records_of({100, 100, 100});
  auto error = [&](PartitionOptions o, const std::vector<int>& t = {}) {
    return error_of([&] { partition_records(t.empty() ? tasks : t, 3, o); });
  };
  auto o = options_for(PartitionScheme::kDirichlet, 10);
  EXPECT_EQ(error(o), "");

  auto bad = o;
  bad.clients = 0;
  EXPECT_NE(error(bad).find("--clients = 0 must be at least 1"), std::string::npos);
  bad = o;
  bad.clients = 100;
  EXPECT_NE(error(bad).find("cannot give 100 clients at least 5 records each from 300 records: "
                            "lower --clients or --min-client-examples"),
            std::string::npos);
  bad = o;
  bad.alpha = 0;
  EXPECT_NE(error(bad).find("--alpha = 0 must be a number > 0"), std::string::npos);
  bad = o;
  bad.size_exponent = -0.5;
  EXPECT_NE(error(bad).find("--size-exponent = -0.5 must be a number >= 0"), std::string::npos);
  bad = o;
  bad.min_examples = 0;
  EXPECT_NE(error(bad).find("--min-client-examples = 0 must be at least 1"), std::string::npos);
  bad = options_for(PartitionScheme::kPathological, 10);
  for (int k : {0, 4}) {
    bad.tasks_per_client = k;
    EXPECT_NE(error(bad).find("--tasks-per-client = " + std::to_string(k) + " is outside [1, 3]"),
              std::string::npos);
  }
  EXPECT_NE(error(o, {0, 1, 3}).find("record 2 has task index 3, outside [0, 3)"), std::string::npos);
  EXPECT_NE(error(o, {0, -1}).find("record 1 has task index -1"), std::string::npos);
  EXPECT_NE(error_of([&] { partition_records({}, 3, o); }).find("no training records"), std::string::npos);
}

TEST(PartitionErrors, SchemeNamesParseAndUnknownOnesListTheAllowed) {
  EXPECT_EQ(parse_partition_scheme("dirichlet"), PartitionScheme::kDirichlet);
  EXPECT_EQ(parse_partition_scheme("pathological"), PartitionScheme::kPathological);
  EXPECT_EQ(parse_partition_scheme("iid"), PartitionScheme::kIid);
  EXPECT_NE(error_of([] { parse_partition_scheme("shards"); }).find("expected dirichlet, pathological or iid"),
            std::string::npos);
}

TEST(PartitionTable, HasAHeaderOneRowPerClientAndATotalRowMatchingTheInput) {
  const auto tasks = records_of({40, 25, 35});
  const auto p = partition_records(tasks, 3, options_for(PartitionScheme::kDirichlet, 6));
  std::istringstream table(partition_table(p, tasks, {"qa", "summarise", "code"}));
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(table, line);) {
    std::istringstream words(line);
    rows.emplace_back(std::istream_iterator<std::string>(words), std::istream_iterator<std::string>());
  }
  ASSERT_EQ(rows.size(), 1u + 6u + 1u);
  EXPECT_EQ(rows.front(), (std::vector<std::string>{"client", "size", "qa", "summarise", "code"}));
  const auto counts = task_counts(p, tasks, 3);
  for (size_t c = 0; c < 6; ++c) {
    EXPECT_EQ(rows[c + 1][0], std::to_string(c));
    EXPECT_EQ(rows[c + 1][1], std::to_string(p.clients[c].size()));
    for (size_t t = 0; t < 3; ++t) EXPECT_EQ(rows[c + 1][t + 2], std::to_string(counts[c][t]));
  }
  EXPECT_EQ(rows.back(), (std::vector<std::string>{"total", "100", "40", "25", "35"}));
}

}  // namespace
}  // namespace mops
