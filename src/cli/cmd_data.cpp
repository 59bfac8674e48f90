// `mops data stats`: what a data source holds: records per task, split sizes, length
// percentiles, and (with --clients) how the training split is partitioned over clients.
// `mops data export`: the tokenized examples (and their clients) as JSON Lines for other tools.
#include <algorithm>
#include <iomanip>
#include <iostream>

#include "atomic_file.h"
#include "command_start.h"
#include "commands.h"
#include "dataset_options.h"
#include "example_export.h"
#include "output_files.h"

namespace mops {
namespace {

// p-th percentile (nearest rank) of `values`, which it sorts.
size_t percentile(std::vector<size_t>& values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t rank = size_t(std::ceil(p / 100.0 * double(values.size())));
  return values[std::max<size_t>(rank, 1) - 1];
}

void print_task_counts(const InstructionDataset& dataset) {
  std::vector<size_t> train(dataset.tasks.size()), test(dataset.tasks.size());
  for (const auto& r : dataset.train) ++train[dataset.task_id(r.task)];
  for (const auto& r : dataset.test) ++test[dataset.task_id(r.task)];
  std::cout << std::left << std::setw(52) << "task" << std::right << std::setw(8) << "train" << std::setw(8) << dataset.held_out
            << std::setw(8) << "total" << "\n";
  for (size_t t = 0; t < dataset.tasks.size(); ++t) {
    std::cout << std::left << std::setw(52) << dataset.tasks[t] << std::right << std::setw(8) << train[t]
              << std::setw(8) << test[t] << std::setw(8) << train[t] + test[t] << "\n";
  }
  std::cout << std::left << std::setw(52) << "all" << std::right << std::setw(8) << dataset.train.size() << std::setw(8)
            << dataset.test.size() << std::setw(8) << dataset.train.size() + dataset.test.size() << "\n";
  if (dataset.skipped_records) std::cout << "skipped bad records: " << dataset.skipped_records << "\n";
}

void print_lengths(const std::string& unit, std::vector<size_t> whole, std::vector<size_t> response) {
  std::cout << "\nlength in " << unit << "   p50    p90    p99    max\n";
  auto row = [](const std::string& what, std::vector<size_t>& v) {
    std::cout << std::left << std::setw(18) << what << std::right << std::setw(6) << percentile(v, 50) << std::setw(7)
              << percentile(v, 90) << std::setw(7) << percentile(v, 99) << std::setw(7) << percentile(v, 100) << "\n";
  };
  row("whole example", whole);
  row("response", response);
}

void print_length_percentiles(const CommandLine& cl, const InstructionDataset& dataset) {
  std::vector<size_t> whole, response;
  if (!cl.has("tokenizer")) {
    for (const auto& r : dataset.train) {
      whole.push_back(format_prompt(r).size() + r.response.size());
      response.push_back(r.response.size());
    }
    print_lengths("characters (--tokenizer for tokens)", whole, response);
    return;
  }
  const auto tokenizer = Tokenizer::load(cl.get<std::string>("tokenizer"));
  const auto examples = tokenize_dataset(dataset, tokenizer, cl.get<int>("max-tokens"));
  for (const auto& e : examples.train) {
    whole.push_back(e.ids.size());
    response.push_back(e.ids.size() - size_t(e.response_begin));
  }
  print_lengths("tokens", whole, response);
}

void print_partition(const CommandLine& cl, const InstructionDataset& dataset) {
  std::vector<int> tasks;
  for (const auto& r : dataset.train) tasks.push_back(dataset.task_id(r.task));
  const auto partition = partition_records(tasks, int(dataset.tasks.size()), partition_options(cl));
  std::cout << "\ntraining split over " << partition.clients.size() << " clients (" << cl.get<std::string>("partition")
            << ")\n" << partition_table(partition, tasks, dataset.tasks);
}

// client_of[i]: the client of training example i under the partition options.
std::vector<int> clients_of_examples(const CommandLine& cl, const TokenizedSplit& data) {
  std::vector<int> tasks;
  for (const auto& e : data.train) tasks.push_back(e.task);
  const auto partition = partition_records(tasks, int(data.tasks.size()), partition_options(cl));
  std::vector<int> client_of(data.train.size());
  for (size_t c = 0; c < partition.clients.size(); ++c) {
    for (size_t example : partition.clients[c]) client_of[example] = int(c);
  }
  return client_of;
}

}  // namespace

int run_data_export(int argc, const char* const* argv) {
  CommandLine cl("data export",
                 "Write the tokenized examples a run trains and evaluates on as JSON Lines, one object per example "
                 "(split, index, task, task_id, ids, question_begin, question_end, response_begin; with --clients the "
                 "training examples' client, the partition `mops federate` uses with the same options): what "
                 "bench/'s PEFT and Flower peers read. README, \"Exporting data\".");
  cl.options().add_options()
      ("tokenizer", po::value<std::string>()->required()->value_name("FILE"), "SentencePiece .model (required)")
      ("out", po::value<std::string>()->required()->value_name("FILE.jsonl"),
       "where to write (required); never replaced without --overwrite");
  cl.add_number<int>("max-tokens", 512, Range::closed(8, 1 << 20),
                     "truncation limit: mops train and federate use the model's max_seq_len - 1 - the run's prompt "
                     "positions (431 for the embedded model and the default 80); give the same to export what they "
                     "train on");
  cl.add_number<int>("clients", std::nullopt, Range::closed(1, 1 << 20),
                     "partition the training split over N clients and write each example's client", "N");
  add_partition_options(cl);
  add_dataset_options(cl, true);
  cl.add_seed_option();
  cl.add_overwrite_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  start_command(cl);
  const auto out = cl.get<std::string>("out");
  const auto locks = claim_outputs("--out", {out}, cl.get<bool>("overwrite"));
  const auto data = load_tokenized_data(cl, cl.get<int>("max-tokens"));
  const auto client_of = cl.has("clients") ? clients_of_examples(cl, data) : std::vector<int>{};
  const auto text = examples_jsonl(data, client_of);
  write_file_atomically(out, text.data(), text.size());
  std::cout << "wrote " << out << ": " << data.train.size() << " train and " << data.test.size() << " " << data.held_out
            << " examples of " << data.tasks.size() << " tasks";
  if (cl.has("clients")) std::cout << ", over " << cl.get<int>("clients") << " clients";
  std::cout << "\n";
  return 0;
}

int run_data_stats(int argc, const char* const* argv) {
  CommandLine cl("data stats",
                 "Describe instruction data: records per task and split, length percentiles, and with --clients the "
                 "partition of the training split over federated clients.");
  cl.options().add_options()
      ("tokenizer", po::value<std::string>()->value_name("FILE"), "SentencePiece .model: lengths in tokens");
  cl.add_number<int>("max-tokens", 512, Range::closed(8, 1 << 20), "truncation limit for token lengths (see README)");
  cl.add_number<int>("clients", std::nullopt, Range::closed(1, 1 << 20), "show the partition over N clients", "N");
  add_partition_options(cl);
  add_dataset_options(cl, true);
  cl.add_seed_option();
  if (!cl.parse(argc, argv, std::cout)) return 0;
  start_command(cl);
  const auto dataset = load_instruction_dataset(dataset_options(cl));
  print_task_counts(dataset);
  print_length_percentiles(cl, dataset);
  if (cl.has("clients")) print_partition(cl, dataset);
  return 0;
}

}  // namespace mops
