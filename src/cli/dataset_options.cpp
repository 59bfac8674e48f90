#include "dataset_options.h"

#include <iostream>
#include <limits>

namespace mops {

void add_dataset_options(CommandLine& cl, bool required) {
  cl.options().add_options()
      ("data", po::value<std::vector<std::string>>()->multitoken()->value_name("SOURCE..."),
       required ? "instruction data (required): skills7 (embedded generator), dolly:FILE.jsonl, sni:DIRECTORY, "
                  "jsonl:FILE; several allowed"
                : "instruction data: skills7 (embedded generator), dolly:FILE.jsonl, sni:DIRECTORY, jsonl:FILE; "
                  "several allowed")
      ("source", po::value<std::vector<std::string>>()->multitoken()->value_name("SOURCE..."), "the same as --data")
      ("tasks", po::value<std::vector<std::string>>()->multitoken()->value_name("NAME..."),
       "tasks/categories to keep (default: Dolly's 7 of the paper, the paper's 7 Super-NaturalInstructions tasks, all others)")
      ("skip-bad-records", po::bool_switch(), "skip malformed records (counted and reported) instead of stopping")
      ("task-field", po::value<std::string>()->default_value("category"), "jsonl: field holding the task")
      ("instruction-field", po::value<std::string>()->default_value("instruction"), "jsonl: instruction field")
      ("context-field", po::value<std::string>()->default_value("context"), "jsonl: context field (optional per record)")
      ("response-field", po::value<std::string>()->default_value("response"), "jsonl: response field");
  constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();
  cl.add_number<int64_t>("samples-per-source", 5000, Range::closed(1, kMaxInt64),
                         "records kept per source (seeded hash sample)");
  cl.add_number<double>("test-fraction", 0.1, Range::open(0, 1), "share of records in the test split");
  cl.add_number<double>("validation-fraction", 0.0, Range::half_open(0, 1),
                        "share of the training records held out as a validation split, evaluated on in place of "
                        "the test split (which is then not read): for choosing settings; 0: none");
  cl.add_number<int64_t>("skills7-per-task", 800, Range::closed(1, 100000), "records the skills7 generator makes per task");
  cl.add_number<int64_t>("data-seed", -1, Range::closed(-1, kMaxInt64),
                         "seed of the skills7 generator, the sampling, the train/test split and the client partition "
                         "(-1: --seed); fix it to compare seeds on one split");
}

void add_partition_options(CommandLine& cl) {
  cl.add_choice("partition", "dirichlet", {"dirichlet", "pathological", "iid"},
                "how the tasks are spread over the clients (README, Client partitions)");
  cl.add_number<double>("alpha", 0.1, Range::open(0, 1e6), "Dirichlet concentration over tasks (smaller = more skewed)");
  cl.add_number<int>("tasks-per-client", 2, Range::closed(1, 1 << 20), "pathological: tasks per client");
  cl.add_number<double>("size-exponent", 1.0, Range::closed(0, 100), "client sizes ~ rank^-exponent (0 = equal)");
  cl.add_number<int>("min-client-examples", 5, Range::closed(1, 1 << 30), "smallest client");
}

PartitionOptions partition_options(const CommandLine& cl) {
  PartitionOptions o;
  o.clients = cl.get<int>("clients");
  o.scheme = parse_partition_scheme(cl.get<std::string>("partition"));
  o.alpha = cl.get<double>("alpha");
  o.tasks_per_client = cl.get<int>("tasks-per-client");
  o.size_exponent = cl.get<double>("size-exponent");
  o.min_examples = cl.get<int>("min-client-examples");
  o.seed = dataset_options(cl).seed;
  return o;
}

bool has_data(const CommandLine& cl) { return cl.has("data") || cl.has("source"); }

DatasetOptions dataset_options(const CommandLine& cl) {
  DatasetOptions o;
  o.sources.clear();
  for (const char* name : {"data", "source"}) {
    if (!cl.has(name)) continue;
    const auto sources = cl.get<std::vector<std::string>>(name);
    o.sources.insert(o.sources.end(), sources.begin(), sources.end());
  }
  if (cl.has("tasks")) o.loader.tasks = cl.get<std::vector<std::string>>("tasks");
  o.loader.skip_bad_records = cl.get<bool>("skip-bad-records");
  o.loader.task_field = cl.get<std::string>("task-field");
  o.loader.instruction_field = cl.get<std::string>("instruction-field");
  o.loader.context_field = cl.get<std::string>("context-field");
  o.loader.response_field = cl.get<std::string>("response-field");
  o.samples_per_source = size_t(cl.get<int64_t>("samples-per-source"));
  o.test_fraction = cl.get<double>("test-fraction");
  o.validation_fraction = cl.get<double>("validation-fraction");
  o.skills7_per_task = size_t(cl.get<int64_t>("skills7-per-task"));
  const int64_t data_seed = cl.get<int64_t>("data-seed");
  o.seed = data_seed >= 0 ? uint64_t(data_seed) : cl.has("seed") ? cl.seed() : 0;
  return o;
}

TextCorpus read_corpus_option(const CommandLine& cl, const std::string& option) {
  TextCorpusOptions options;
  options.jsonl_fields = cl.get<std::vector<std::string>>("fields");
  options.skip_bad_records = cl.get<bool>("skip-bad-records");
  auto corpus = read_text_corpus(cl.get<std::vector<std::string>>(option), options);
  if (corpus.skipped_records > 0) std::cerr << "skipped " << corpus.skipped_records << " bad records\n";
  return corpus;
}

TokenizedSplit load_tokenized_data(const CommandLine& cl, int max_tokens) {
  const auto dataset = load_instruction_dataset(dataset_options(cl));
  const auto tokenizer = Tokenizer::load(cl.get<std::string>("tokenizer"));
  return tokenize_dataset(dataset, tokenizer, max_tokens);
}

}  // namespace mops
