#include "federated_resume.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "errors.h"
#include "prompt_state_io.h"

namespace mops {

void check_resume_config(const std::string& path, const std::string& stored, const std::string& current,
                         const std::vector<std::string>& free_keys) {
  // {"command": ..., "options": {name: value}, "defaults": [name]} (CommandLine::resolved_json)
  const auto now = nlohmann::json::parse(current);
  auto a = nlohmann::json::parse(stored).at("options"), b = now.at("options");
  const auto defaults = now.value("defaults", nlohmann::json::array());
  auto at_default = [&](const std::string& key) { return std::find(defaults.begin(), defaults.end(), key) != defaults.end(); };
  for (const auto& key : free_keys) {
    a.erase(key);
    b.erase(key);
  }
  std::string differing;
  for (const auto& item : b.items()) {
    // An option the checkpoint's mops did not have yet, left at its default (which keeps what mops did before it).
    if (!a.contains(item.key()) && at_default(item.key())) continue;
    if (!a.contains(item.key()) || a[item.key()] != item.value()) differing += " --" + item.key();
  }
  for (const auto& item : a.items()) {
    if (!b.contains(item.key())) differing += " --" + item.key();
  }
  MOPS_CHECK(differing.empty(), path << ": --resume with a configuration that differs from the checkpoint's in"
                                     << differing << "; resume with the original options, or start a new --out");
}

namespace {

// Row i of a (rows, width...) dataset read flat.
template <class T>
std::vector<T> row(const std::vector<double>& flat, size_t i, size_t width) {
  return std::vector<T>(flat.begin() + i * width, flat.begin() + (i + 1) * width);
}

size_t width_of(const std::vector<int64_t>& shape) {
  size_t w = 1;
  for (size_t d = 1; d < shape.size(); ++d) w *= size_t(shape[d]);
  return w;
}

std::vector<RoundRecord> read_rounds(const std::string& path, int up_to, bool gate) {
  std::vector<int64_t> clients_shape, gate_shape;
  const auto round = read_dataset(path, "/fed/round");
  const auto ppl = read_dataset(path, "/fed/ppl");
  const auto clients = read_dataset(path, "/fed/clients", &clients_shape);
  const auto client_gate = gate ? read_dataset(path, "/fed/client_gate", &gate_shape) : std::vector<double>{};
  const auto examples = read_dataset(path, "/fed/client_examples");
  const auto loss = read_dataset(path, "/fed/client_loss");
  const auto bytes = read_dataset(path, "/fed/bytes_reduced");
  const auto seconds = read_dataset(path, "/fed/round_seconds");
  const auto comm = read_dataset(path, "/fed/comm_seconds");
  const auto wait = read_dataset(path, "/fed/wait_seconds");
  const size_t A = size_t(clients_shape.at(1)), T = round.empty() ? 0 : ppl.size() / round.size();
  std::vector<RoundRecord> rows;
  for (size_t i = 0; i < round.size() && round[i] <= up_to; ++i) {
    RoundRecord r;
    r.round = int64_t(round[i]);
    r.ppl = row<double>(ppl, i, T);
    r.clients = row<int64_t>(clients, i, A);
    if (gate) r.client_gate = row<double>(client_gate, i, width_of(gate_shape));
    r.client_examples = row<int64_t>(examples, i, A);
    r.client_loss = row<double>(loss, i, A);
    r.bytes_reduced = bytes[i];
    r.round_seconds = seconds[i];
    r.comm_seconds = comm[i];
    r.wait_seconds = wait[i];
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<EvalRow> read_evaluations(const std::string& path, int up_to, bool gate) {
  std::vector<int64_t> ppl_shape, gate_shape;
  const auto step = read_dataset(path, "/eval/step");
  const auto ppl = read_dataset(path, "/eval/ppl", &ppl_shape);
  const auto all = read_dataset(path, "/eval/ppl_all");
  const auto by_task = gate ? read_dataset(path, "/gate/by_task", &gate_shape) : std::vector<double>{};
  const auto entropy = gate ? read_dataset(path, "/gate/entropy") : std::vector<double>{};
  const auto used = gate ? read_dataset(path, "/gate/experts_used") : std::vector<double>{};
  std::vector<EvalRow> rows;
  for (size_t i = 0; i < step.size() && step[i] <= up_to; ++i) {
    const size_t T = width_of(ppl_shape);
    EvalRow r{int64_t(step[i]), row<double>(ppl, i, T), all[i], {}};
    if (gate) r.gate = {row<double>(by_task, i, width_of(gate_shape)), row<double>(entropy, i, T), row<double>(used, i, T)};
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace

ResumePoint read_resume_point(const std::string& path, const std::string& config_json,
                              const std::vector<std::string>& free_keys, const ModelConfig& backbone) {
  MOPS_CHECK(read_string_attribute(path, "mode") == "federated",
             path << ": --resume needs the results file of a federated run (mode is '"
                  << read_string_attribute(path, "mode") << "')");
  check_resume_config(path, read_string_attribute(path, "config"), config_json, free_keys);
  ResumePoint point;
  point.status = read_string_attribute(path, "status");
  point.checkpoint_round = std::stoi(read_string_attribute(path, "checkpoint_round"));
  point.state = read_prompt_state(path, backbone);
  const bool gate = bool(point.state->gate);
  point.rounds = read_rounds(path, point.checkpoint_round, gate);
  point.evaluations = read_evaluations(path, point.checkpoint_round, gate);
  const auto steps = read_dataset(path, "/train/step"), losses = read_dataset(path, "/train/loss");
  for (size_t i = 0; i < steps.size() && steps[i] <= point.checkpoint_round; ++i) point.train.emplace_back(int64_t(steps[i]), losses[i]);
  point.references = read_string_attribute(path, "references");
  if (gate) point.gate_after_pretraining = read_state(path, "gate_by_task_after_pretraining", nullptr);
  return point;
}

void replay_resume_point(const ResumePoint& point, ResultsFile& results) {
  results.begin_batch();
  results.write_attribute("references", point.references);
  for (const auto& [step, loss] : point.train) results.append_train(step, loss);
  for (const auto& e : point.evaluations) results.append_eval(e.step, e.ppl, e.ppl_all, e.gate);
  for (const auto& r : point.rounds) results.append_round(r);
  if (!point.gate_after_pretraining.empty()) {
    const int64_t E = point.state->config().experts;
    results.write_state("gate_by_task_after_pretraining", point.gate_after_pretraining,
                        {int64_t(point.gate_after_pretraining.size()) / E, E});
  }
  PromptState state = point.state;  // the same module; write_prompt_state takes a mutable holder
  write_prompt_state(results, state);
  results.write_attribute("checkpoint_round", std::to_string(point.checkpoint_round));
  results.end_batch();
}

}  // namespace mops
