#include "checkpoint.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "errors.h"
#include "hf_checkpoint.h"
#include "llama2c_checkpoint.h"
#include "llama2c_header.h"
#include "safetensors.h"
#include "safetensors_layout.h"

namespace mops {
namespace {

constexpr const char* kFormatKey = "format";
constexpr const char* kFormatValue = "mops";
constexpr const char* kConfigKey = "mops_model_config";
constexpr const char* kScaleSuffix = "_scale";

// A stored parameter in float32: int8 ones are dequantized with their per-row scales.
torch::Tensor stored_parameter(const SafetensorsReader& reader, const std::string& name) {
  if (reader.dtype(name) != "I8") return reader.float_tensor(name);
  const std::string scale_name = name + kScaleSuffix;
  MOPS_CHECK(reader.contains(scale_name), reader.path() << ": int8 tensor '" << name << "' has no '" << scale_name << "'");
  Int8Weight weight{reader.tensor(name), reader.float_tensor(scale_name)};
  MOPS_CHECK(weight.values.dim() == 2 && weight.scales.dim() == 1 && weight.scales.size(0) == weight.values.size(0),
             reader.path() << ": int8 tensor '" << name << "' " << weight.values.sizes() << " does not match its scales "
                           << weight.scales.sizes());
  return weight.dequantize();
}

LoadedModel load_own_format(const std::string& path) {
  SafetensorsReader reader(path);
  const auto& metadata = reader.metadata();
  auto format = metadata.find(kFormatKey);
  MOPS_CHECK(format != metadata.end() && format->second == kFormatValue && metadata.count(kConfigKey),
             path << ": not a MoPs model file (its safetensors metadata lacks format=mops and "
                     "mops_model_config). Hugging Face checkpoints are loaded from their directory");
  LoadedModel loaded;
  loaded.model = Llama(ModelConfig::from_json(metadata.at(kConfigKey), path));
  ParameterFiller filler(loaded.model, path);
  for (const auto& item : loaded.model->named_parameters()) {
    filler.fill(item.key(), stored_parameter(reader, item.key()));
  }
  filler.finish();
  loaded.format = CheckpointFormat::kMops;
  loaded.metadata = metadata;
  return loaded;
}

// The format of the file at `path`, from its content: safetensors when its first 8 bytes are a
// plausible header length followed by '{', llama2.c when its 28-byte header passes every
// check with the file's exact size; otherwise an error saying why it is neither.
CheckpointFormat detect_file_format(const std::string& path) {
  MOPS_CHECK(std::filesystem::is_regular_file(path), path << ": is not a regular file");
  std::ifstream in(path, std::ios::binary);
  MOPS_CHECK(in, "cannot open '" << path << "': " << std::strerror(errno));
  char head[kLlama2cHeaderBytes];
  in.read(head, sizeof(head));
  const auto head_size = static_cast<std::size_t>(in.gcount());
  const std::uint64_t file_size = std::filesystem::file_size(path);
  const std::string not_safetensors = safetensors_signature_problem(head, head_size, file_size);
  if (not_safetensors.empty()) return CheckpointFormat::kMops;
  ModelConfig unused;
  const std::string not_llama2c = llama2c_header_problem(head, head_size, file_size, unused);
  if (not_llama2c.empty()) return CheckpointFormat::kLlama2c;
  MOPS_FAIL(path << ": not a checkpoint of a known format (a Hugging Face checkpoint is a directory): "
                    "not safetensors: "
                 << not_safetensors << "; not llama2.c v0: " << not_llama2c);
}

}  // namespace

const char* format_name(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::kMops: return "mops safetensors";
    case CheckpointFormat::kLlama2c: return "llama2.c v0";
    case CheckpointFormat::kHuggingFace: return "Hugging Face Llama";
  }
  return "?";
}

LoadedModel load_model(const std::string& path) {
  namespace fs = std::filesystem;
  MOPS_CHECK(fs::exists(path), "model '" << path << "' does not exist");
  LoadedModel loaded;
  if (fs::is_directory(path)) {
    loaded.model = load_hf_checkpoint(path);
    loaded.format = CheckpointFormat::kHuggingFace;
  } else if (detect_file_format(path) == CheckpointFormat::kLlama2c) {
    loaded.model = load_llama2c_checkpoint(path);
    loaded.format = CheckpointFormat::kLlama2c;
  } else {
    loaded = load_own_format(path);
  }
  loaded.model->eval();
  return loaded;
}

void save_model(Llama& model, const std::string& path, const std::map<std::string, std::string>& metadata,
                const std::map<std::string, Int8Weight>& int8_weights) {
  auto all_metadata = metadata;
  all_metadata[kFormatKey] = kFormatValue;
  all_metadata[kConfigKey] = model->config().to_json();
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model->named_parameters()) {
    auto int8 = int8_weights.find(item.key());
    if (int8 == int8_weights.end()) {
      tensors.emplace_back(item.key(), item.value().detach().to(torch::kFloat32).contiguous());
      continue;
    }
    MOPS_CHECK(int8->second.dequantize().equal(item.value().detach()),
               "int8 storage of '" << item.key() << "' does not match the model's weights");
    tensors.emplace_back(item.key(), int8->second.values);
    tensors.emplace_back(item.key() + kScaleSuffix, int8->second.scales);
  }
  write_safetensors(path, tensors, all_metadata);
}

ParameterFiller::ParameterFiller(Llama& model, std::string source) : source_(std::move(source)) {
  for (const auto& item : model->named_parameters()) {
    parameters_[item.key()] = item.value();
    filled_[item.key()] = false;
  }
}

void ParameterFiller::fill(const std::string& name, const torch::Tensor& value, const std::string& stored_name) {
  auto it = parameters_.find(name);
  MOPS_CHECK(it != parameters_.end(), source_ << ": no model parameter is called '" << name << "'");
  MOPS_CHECK(it->second.sizes() == value.sizes(),
             source_ << ": tensor '" << (stored_name.empty() ? name : stored_name) << "' has shape " << value.sizes()
                     << " but the model config implies " << it->second.sizes());
  torch::NoGradGuard no_grad;
  it->second.copy_(value.to(torch::kFloat32));
  filled_[name] = true;
}

void ParameterFiller::finish() const {
  std::string missing;
  for (const auto& [name, done] : filled_) {
    if (!done) missing += (missing.empty() ? "" : ", ") + name;
  }
  MOPS_CHECK(missing.empty(), source_ << ": missing tensors: " << missing);
}

}  // namespace mops
