#include "server/api/inference_tensors.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/core/refusal.h"

namespace matid {
namespace {

constexpr char kAccepted[] =
    "BYTES [N] or [N,1] (encoded images), UINT8 [N,H,W,C] (pixels, C 1 or 3, RGB) or "
    "FP32 [N,C,H,W] (preprocessed)";

absl::Status Invalid(absl::string_view message, absl::string_view reason) {
  return Refusal(absl::InvalidArgumentError(message), reason);
}

std::string ShapeText(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// The number of elements of `shape`, or an error for a negative dimension or
// more elements than any request can carry.
absl::StatusOr<int64_t> ElementCount(const google::protobuf::RepeatedField<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) {
      return Invalid(absl::StrCat("input shape ", ShapeText(shape), " has a negative dimension"),
                     "zero_size");
    }
    if (dim != 0 && count > std::numeric_limits<int32_t>::max() / dim) {
      return Invalid(absl::StrCat("input shape ", ShapeText(shape), " is too large"),
                     "raw_size_mismatch");
    }
    count *= dim;
  }
  return count;
}

uint32_t ReadLittleEndian32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
}

void AppendLittleEndian32(uint32_t v, std::string* out) {
  const char bytes[4] = {static_cast<char>(v), static_cast<char>(v >> 8),
                         static_cast<char>(v >> 16), static_cast<char>(v >> 24)};
  out->append(bytes, 4);
}

absl::Status ReadBytes(const inference::ModelInferRequest::InferInputTensor& input,
                       const std::string* raw, int64_t n, InferImages* out) {
  const auto& shape = input.shape();
  if (!(shape.size() == 1 || (shape.size() == 2 && shape[1] == 1))) {
    return Invalid(absl::StrCat("BYTES input ", input.name(), " has shape ", ShapeText(shape),
                                "; it must be [N] or [N,1], one encoded image each"),
                   "raw_size_mismatch");
  }
  if (raw == nullptr) {
    if (input.contents().bytes_contents_size() != n) {
      return Invalid(
          absl::StrCat("BYTES input ", input.name(), " has shape ", ShapeText(shape), " but ",
                       input.contents().bytes_contents_size(), " bytes_contents"),
          "raw_size_mismatch");
    }
    for (const std::string& bytes : input.contents().bytes_contents()) {
      out->images.push_back(ImageRef::Encoded(bytes));
    }
    return absl::OkStatus();
  }
  // Raw BYTES: each element is preceded by its length, 4 bytes little-endian.
  size_t at = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (raw->size() - at < 4) {
      return Invalid(
          absl::StrCat("raw BYTES input ", input.name(), " ends before element ", i, " of ", n,
                       " (each element is a 4-byte little-endian length, "
                       "then that many bytes)"),
          "raw_size_mismatch");
    }
    const uint32_t length = ReadLittleEndian32(raw->data() + at);
    at += 4;
    if (raw->size() - at < length) {
      return Invalid(absl::StrCat("raw BYTES input ", input.name(), " element ", i, " claims ",
                                  length, " bytes; ", raw->size() - at, " are left"),
                     "raw_size_mismatch");
    }
    out->images.push_back(ImageRef::Encoded(absl::string_view(raw->data() + at, length)));
    at += length;
  }
  if (at != raw->size()) {
    return Invalid(absl::StrCat("raw BYTES input ", input.name(), " has ", raw->size() - at,
                                " bytes after its ", n, " elements (shape ", ShapeText(shape), ")"),
                   "raw_size_mismatch");
  }
  return absl::OkStatus();
}

absl::Status ReadUint8(const inference::ModelInferRequest::InferInputTensor& input,
                       const std::string* raw, int64_t n, int64_t count, InferImages* out) {
  const auto& shape = input.shape();
  if (shape.size() != 4 || (shape[3] != 1 && shape[3] != 3) || shape[1] < 1 || shape[2] < 1) {
    return Invalid(absl::StrCat("UINT8 input ", input.name(), " has shape ", ShapeText(shape),
                                "; it must be [N,H,W,C] with C 1 (gray) or 3 (RGB)"),
                   "raw_size_mismatch");
  }
  absl::string_view pixels;
  if (raw != nullptr) {
    pixels = *raw;
  } else {
    const auto& values = input.contents().uint_contents();
    out->converted.resize(values.size());
    for (int i = 0; i < values.size(); ++i) {
      if (values[i] > 255) {
        return Invalid(absl::StrCat("UINT8 input ", input.name(), " element ", i, " is ", values[i],
                                    "; pixels are 0..255"),
                       "raw_size_mismatch");
      }
      out->converted[i] = static_cast<char>(values[i]);
    }
    pixels = absl::string_view(out->converted.data(), out->converted.size());
  }
  if (static_cast<int64_t>(pixels.size()) != count) {
    return Invalid(absl::StrCat("UINT8 input ", input.name(), " has shape ", ShapeText(shape), " (",
                                count, " bytes) but ", pixels.size(), " bytes of contents"),
                   "raw_size_mismatch");
  }
  const int64_t image_bytes = count / n;
  for (int64_t i = 0; i < n; ++i) {
    RawPixels raw_pixels;
    raw_pixels.height = shape[1];
    raw_pixels.width = shape[2];
    raw_pixels.format = shape[3] == 1 ? PixelFormat::kGray8 : PixelFormat::kRgb8;
    raw_pixels.pixels = pixels.substr(i * image_bytes, image_bytes);
    out->images.push_back(ImageRef::Raw(raw_pixels));
  }
  return absl::OkStatus();
}

absl::Status ReadFp32(const inference::ModelInferRequest::InferInputTensor& input,
                      const std::string* raw, int64_t n, int64_t count, const InputSpec& spec,
                      InferImages* out) {
  const auto& shape = input.shape();
  if (shape.size() != 4 || shape[1] != spec.channels() || shape[2] != spec.height ||
      shape[3] != spec.width) {
    return Invalid(absl::StrCat("FP32 input ", input.name(), " has shape ", ShapeText(shape),
                                "; this model takes preprocessed tensors of [N,", spec.channels(),
                                ",", spec.height, ",", spec.width, "]"),
                   "raw_size_mismatch");
  }
  absl::string_view bytes;
  if (raw != nullptr) {
    bytes = *raw;
  } else {
    const auto& values = input.contents().fp32_contents();
    bytes = absl::string_view(reinterpret_cast<const char*>(values.data()),
                              values.size() * sizeof(float));
  }
  if (static_cast<int64_t>(bytes.size()) != count * static_cast<int64_t>(sizeof(float))) {
    return Invalid(
        absl::StrCat("FP32 input ", input.name(), " has shape ", ShapeText(shape), " (", count,
                     " floats) but ", bytes.size() / sizeof(float), " floats of contents"),
        "raw_size_mismatch");
  }
  const size_t image_bytes = bytes.size() / n;
  for (int64_t i = 0; i < n; ++i) {
    out->images.push_back(ImageRef::Tensor(bytes.substr(i * image_bytes, image_bytes)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<InferImages> ReadInferImages(const inference::ModelInferRequest& request,
                                            const InputSpec& spec, int max_images) {
  if (request.inputs_size() != 1) {
    return Invalid(absl::StrCat("ModelInfer takes exactly one input tensor (", kImageInputName,
                                ": ", kAccepted, "); the request has ", request.inputs_size()),
                   "missing_image");
  }
  const auto& input = request.inputs(0);
  if (request.raw_input_contents_size() > 1) {
    return Invalid(absl::StrCat("the request has ", request.raw_input_contents_size(),
                                " raw_input_contents for its one input"),
                   "raw_size_mismatch");
  }
  const std::string* raw =
      request.raw_input_contents_size() == 1 ? &request.raw_input_contents(0) : nullptr;
  if (raw != nullptr && input.has_contents() && input.contents().ByteSizeLong() > 0) {
    return Invalid(
        absl::StrCat("input ", input.name(), " has both contents and raw_input_contents; send one"),
        "raw_size_mismatch");
  }
  if (input.shape_size() == 0 || input.shape(0) < 1) {
    return Invalid(absl::StrCat("input ", input.name(), " has shape ", ShapeText(input.shape()),
                                "; the first dimension is the number of images, at least 1"),
                   "batch_empty");
  }
  const int64_t n = input.shape(0);
  if (n > max_images) {
    return Invalid(absl::StrCat("input ", input.name(), " has ", n, " images; the limit is ",
                                max_images, " (--max_batch_items): split the request"),
                   "batch_too_large");
  }
  absl::StatusOr<int64_t> count = ElementCount(input.shape());
  if (!count.ok()) return count.status();

  InferImages images;
  images.images.reserve(n);
  absl::Status read;
  if (input.datatype() == "BYTES") {
    read = ReadBytes(input, raw, n, &images);
  } else if (input.datatype() == "UINT8") {
    read = ReadUint8(input, raw, n, *count, &images);
  } else if (input.datatype() == "FP32") {
    read = ReadFp32(input, raw, n, *count, spec, &images);
  } else {
    read = Invalid(absl::StrCat("input ", input.name(), " has datatype \"", input.datatype(),
                                "\"; accepted: ", kAccepted),
                   "unsupported_format");
  }
  if (!read.ok()) return read;
  return images;
}

absl::StatusOr<std::vector<RequestedOutput>> ReadRequestedOutputs(
    const inference::ModelInferRequest& request) {
  std::vector<RequestedOutput> outputs;
  bool raw_requested = false, classification_requested = false;
  for (const auto& requested : request.outputs()) {
    if (requested.name() != kProbabilitiesOutputName) {
      return Invalid(absl::StrCat("unknown output \"", requested.name(), "\"; the model has ",
                                  kProbabilitiesOutputName),
                     "unsupported_format");
    }
    RequestedOutput output{requested.name(), 0};
    if (auto it = requested.parameters().find("classification");
        it != requested.parameters().end()) {
      const inference::InferParameter& k = it->second;
      int64_t top = k.has_int64_param()    ? k.int64_param()
                    : k.has_uint64_param() ? static_cast<int64_t>(k.uint64_param())
                                           : -1;
      if (top < 1) {
        return Invalid(absl::StrCat("output ", requested.name(),
                                    ": parameter classification must be an integer >= 1"),
                       "unsupported_format");
      }
      output.classification = static_cast<int>(std::min<int64_t>(top, 1 << 20));
    }
    // Each requested output is written for every image: one raw tensor and
    // one classification at most, or a small request could ask for a huge
    // answer (60,000 copies of the output made a 1 MB request a 155 MB one).
    bool& seen = output.classification > 0 ? classification_requested : raw_requested;
    if (seen) {
      return Invalid(absl::StrCat("output ", requested.name(), " is requested more than once ",
                                  output.classification > 0 ? "with" : "without",
                                  " the classification parameter; at most one of each"),
                     "duplicate_output");
    }
    seen = true;
    outputs.push_back(output);
  }
  if (outputs.empty()) outputs.push_back({kProbabilitiesOutputName, 0});
  return outputs;
}

void WriteInferOutputs(const std::vector<Classification>& results, const ModelInfo& model,
                       const std::vector<RequestedOutput>& outputs,
                       inference::ModelInferResponse* response) {
  const int64_t n = static_cast<int64_t>(results.size());
  const int classes = static_cast<int>(model.labels.size());
  for (const RequestedOutput& requested : outputs) {
    auto* tensor = response->add_outputs();
    tensor->set_name(requested.name);
    std::string* raw = response->add_raw_output_contents();
    if (requested.classification == 0) {
      tensor->set_datatype("FP32");
      tensor->add_shape(n);
      tensor->add_shape(classes);
      std::vector<float> probabilities(n * classes, 0.0f);
      for (int64_t i = 0; i < n; ++i) {
        for (const ScoredLabel& scored : results[i].top) {
          probabilities[i * classes + scored.index] = scored.score;
        }
      }
      raw->assign(reinterpret_cast<const char*>(probabilities.data()),
                  probabilities.size() * sizeof(float));
      continue;
    }
    // Triton's classification extension: the top K, best first.
    const int k = std::min(requested.classification, classes);
    tensor->set_datatype("BYTES");
    tensor->add_shape(n);
    tensor->add_shape(k);
    for (int64_t i = 0; i < n; ++i) {
      for (int j = 0; j < k; ++j) {
        const ScoredLabel& scored = results[i].top[j];
        const std::string element =
            absl::StrFormat("%f:%d:%s", scored.score, scored.index, model.labels[scored.index]);
        AppendLittleEndian32(static_cast<uint32_t>(element.size()), raw);
        raw->append(element);
      }
    }
  }
}

}  // namespace matid
