// What the server knows about the loaded model: labels and how to prepare an
// image for it. Parsed once from a model directory's metadata.json; immutable
// afterwards, so it may be read from any thread.
#ifndef MATID_SERVER_BACKEND_MODEL_INFO_H_
#define MATID_SERVER_BACKEND_MODEL_INFO_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model_input_fit.h"

namespace matid {

enum class ColorMode { kGray, kRgb };

struct InputSpec {
  int width = 0;
  int height = 0;
  ColorMode color = ColorMode::kGray;
  ResizeMode resize = ResizeMode::kStretch;
  std::vector<float> mean;  // one per channel, on pixels scaled to [0, 1]
  std::vector<float> std;   // one per channel, all > 0

  int channels() const { return color == ColorMode::kGray ? 1 : 3; }
  // Floats in one preprocessed image (channels x height x width).
  size_t tensor_size() const { return static_cast<size_t>(channels()) * width * height; }
};

struct ModelInfo {
  std::string name;
  std::string version;
  std::string variant;  // "fp32" or "int8": which file was loaded
  std::vector<std::string> labels;
  InputSpec input;
  std::string qengine = "onednn";      // for the int8 model
  bool outputs_probabilities = false;  // false: logits, softmax applied
  // metadata "sha256": file name -> hex digest (empty: not recorded).
  std::map<std::string, std::string> file_sha256;
  // sha256 of the model file actually loaded (set by the backend).
  std::string loaded_sha256;
};

// Which model answered: what every response, result and log line names.
struct ModelIdentity {
  std::string name;
  std::string version;  // repository version, or metadata's with --model_dir
  std::string variant;  // "fp32" or "int8"
  std::string sha256;   // first 12 hex digits of the loaded file's digest
};

absl::string_view ColorModeName(ColorMode mode);

// Parses and validates metadata.json text (the JSON form of
// matid.v1.ModelMetadata). Unknown fields are ignored so newer exporters
// stay readable. Fails with INVALID_ARGUMENT saying which field is wrong.
absl::StatusOr<ModelInfo> ParseModelMetadata(absl::string_view json);

// Reads `model_dir`/metadata.json and parses it.
absl::StatusOr<ModelInfo> LoadModelMetadata(const std::string& model_dir);

}  // namespace matid

#endif  // MATID_SERVER_BACKEND_MODEL_INFO_H_
