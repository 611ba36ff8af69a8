#include "server/backend/model_info.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/file_contents.h"
#include "google/protobuf/util/json_util.h"
#include "matid/v1/model_metadata.pb.h"

namespace matid {
namespace {

constexpr int kMaxInputSide = 8192;

absl::StatusOr<ColorMode> ParseColor(const std::string& color) {
  if (color == "gray") return ColorMode::kGray;
  if (color == "rgb") return ColorMode::kRgb;
  return absl::InvalidArgumentError(
      absl::StrCat("metadata input.color is \"", color, "\"; expected \"gray\" or \"rgb\""));
}

absl::StatusOr<ResizeMode> ParseResize(const std::string& resize) {
  if (auto mode = ParseResizeMode(resize)) return *mode;
  return absl::InvalidArgumentError(
      absl::StrCat("metadata input.resize is \"", resize,
                   "\"; expected \"stretch\", \"center_crop\" or \"letterbox\""));
}

// Mean and std may list one value for every channel, or one value for all.
absl::StatusOr<std::vector<float>> PerChannel(const google::protobuf::RepeatedField<float>& values,
                                              int channels, float fallback,
                                              absl::string_view field) {
  if (values.empty()) return std::vector<float>(channels, fallback);
  if (values.size() == 1) return std::vector<float>(channels, values[0]);
  if (values.size() != channels) {
    return absl::InvalidArgumentError(absl::StrCat("metadata input.", field, " has ", values.size(),
                                                   " values for ", channels, " channels"));
  }
  return std::vector<float>(values.begin(), values.end());
}

}  // namespace

absl::string_view ColorModeName(ColorMode mode) {
  return mode == ColorMode::kGray ? "gray" : "rgb";
}

namespace {

// metadata.input: size, colour, resize, mean and std.
absl::StatusOr<InputSpec> ReadInputSpec(const v1::InputSpec& input) {
  if (input.width() == 0 || input.height() == 0 || input.width() > kMaxInputSide ||
      input.height() > kMaxInputSide) {
    return absl::InvalidArgumentError(absl::StrCat("metadata input size is ", input.width(), "x",
                                                   input.height(), "; each side must be in 1..",
                                                   kMaxInputSide));
  }
  InputSpec spec;
  spec.width = static_cast<int>(input.width());
  spec.height = static_cast<int>(input.height());
  auto color =
      ParseColor(input.color().empty() ? (input.channels() == 3 ? "rgb" : "gray") : input.color());
  if (!color.ok()) return color.status();
  spec.color = *color;
  if (input.channels() != 0 && static_cast<int>(input.channels()) != spec.channels()) {
    return absl::InvalidArgumentError(absl::StrCat("metadata input.channels is ", input.channels(),
                                                   " but input.color \"", ColorModeName(*color),
                                                   "\" has ", spec.channels()));
  }
  auto resize = ParseResize(input.resize());
  if (!resize.ok()) return resize.status();
  spec.resize = *resize;
  auto mean = PerChannel(input.mean(), spec.channels(), 0.0f, "mean");
  if (!mean.ok()) return mean.status();
  auto std = PerChannel(input.std(), spec.channels(), 1.0f, "std");
  if (!std.ok()) return std.status();
  for (float s : *std) {
    if (!(s > 0.0f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata input.std must be > 0, got [", absl::StrJoin(*std, ", "), "]"));
    }
  }
  spec.mean = *std::move(mean);
  spec.std = *std::move(std);
  return spec;
}

}  // namespace

absl::StatusOr<ModelInfo> ParseModelMetadata(absl::string_view json) {
  v1::ModelMetadata metadata;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto parsed = google::protobuf::util::JsonStringToMessage(std::string(json), &metadata, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata.json is not valid: ", parsed.ToString()));
  }

  ModelInfo info;
  info.name = metadata.name().empty() ? "model" : metadata.name();
  info.version = metadata.version().empty() ? "0" : metadata.version();
  info.labels.assign(metadata.labels().begin(), metadata.labels().end());
  if (info.labels.empty()) {
    return absl::InvalidArgumentError("metadata labels[] is empty");
  }
  absl::StatusOr<InputSpec> input = ReadInputSpec(metadata.input());
  if (!input.ok()) return input.status();
  info.input = *std::move(input);
  if (!metadata.qengine().empty()) info.qengine = metadata.qengine();
  info.file_sha256.insert(metadata.sha256().begin(), metadata.sha256().end());
  if (metadata.output() == "probabilities") {
    info.outputs_probabilities = true;
  } else if (!metadata.output().empty() && metadata.output() != "logits") {
    return absl::InvalidArgumentError(absl::StrCat("metadata output is \"", metadata.output(),
                                                   "\"; expected \"logits\" or \"probabilities\""));
  }
  return info;
}

absl::StatusOr<ModelInfo> LoadModelMetadata(const std::string& model_dir) {
  const std::string path = model_dir + "/metadata.json";
  absl::StatusOr<std::string> text = ReadFileContents(path);
  if (!text.ok()) return text.status();
  auto info = ParseModelMetadata(*text);
  if (!info.ok()) {
    return absl::Status(info.status().code(), absl::StrCat(path, ": ", info.status().message()));
  }
  return info;
}

}  // namespace matid
