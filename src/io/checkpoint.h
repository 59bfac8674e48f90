// Loading and saving the backbone. Formats:
//   - the project's own: one .safetensors file, parameter names as in llama.h, the model
//     config (and anything else the writer adds) in its metadata; linear weights of a
//     compressed model may be stored as int8 ("<name>" I8 (R, K) + "<name>_scale" F32 (R)),
//     which the loader turns back into float32 weights q * scale, the values computed with;
//   - llama2.c's legacy v0 .bin export (tied or untied classifier);
//   - a Hugging Face Llama directory: config.json + model.safetensors, or shards listed in
//     model.safetensors.index.json; F32/F16/BF16; q/k rows converted from rotate-half.
#pragma once
#include <map>
#include <string>

#include "int8_quantization.h"
#include "llama.h"

namespace mops {

enum class CheckpointFormat { kMops, kLlama2c, kHuggingFace };
const char* format_name(CheckpointFormat format);

struct LoadedModel {
  Llama model{nullptr};
  CheckpointFormat format = CheckpointFormat::kMops;
  std::map<std::string, std::string> metadata;  // own format only
};

// A directory is Hugging Face; a file is recognised by its content (not its name) as the
// project's safetensors format or llama2.c, and is an error naming both formats' objections
// when it is neither.
LoadedModel load_model(const std::string& path);

// Writes the project's format (atomically); `metadata` is stored next to the model config.
// Parameters named in `int8_weights` are stored as int8 + scale instead of float32; their
// dequantized values must equal the model's parameters.
void save_model(Llama& model, const std::string& path, const std::map<std::string, std::string>& metadata = {},
                const std::map<std::string, Int8Weight>& int8_weights = {});

// Fills a freshly built model parameter by parameter, checking shapes, and makes sure none
// is left out. Used by every loader.
class ParameterFiller {
 public:
  ParameterFiller(Llama& model, std::string source);
  // value in any float dtype; `stored_name` is the tensor's name in the file, when it differs.
  void fill(const std::string& name, const torch::Tensor& value, const std::string& stored_name = "");
  void finish() const;  // error naming every parameter that was never filled

 private:
  std::map<std::string, torch::Tensor> parameters_;
  std::map<std::string, bool> filled_;
  std::string source_;
};

}  // namespace mops
