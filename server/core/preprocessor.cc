#include "server/core/preprocessor.h"

#include <cmath>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/image_header.h"
#include "common/model_input_fit.h"
#include "server/core/refusal.h"

namespace matid {
namespace {

absl::Status CheckPixelCount(int64_t width, int64_t height, int64_t limit, absl::string_view what) {
  if (width <= 0 || height <= 0) {
    return Refusal(absl::InvalidArgumentError(absl::StrCat(what, " has size ", width, "x", height,
                                                           "; both sides must be > 0")),
                   "zero_size");
  }
  if (width > limit / height) {
    // No width * height here: it can overflow int64 (found by preprocess_fuzzer).
    return Refusal(absl::InvalidArgumentError(absl::StrCat(what, " is ", width, "x", height,
                                                           " pixels; the limit is ", limit,
                                                           " pixels (--max_image_pixels)")),
                   "too_many_pixels");
  }
  return absl::OkStatus();
}

absl::StatusOr<cv::Mat> DecodeEncoded(absl::string_view bytes, const InputSpec& spec,
                                      const PreprocessOptions& options) {
  if (bytes.empty()) {
    return Refusal(absl::InvalidArgumentError("image is empty (0 bytes)"), "empty_image");
  }
  if (static_cast<int64_t>(bytes.size()) > options.max_encoded_bytes) {
    return Refusal(
        absl::InvalidArgumentError(absl::StrCat(
            "encoded image is ", bytes.size(), " bytes; the limit is ", options.max_encoded_bytes)),
        "encoded_too_large");
  }
  absl::string_view format = "unknown format";
  int reduce_factor = 1;
  if (auto header = ReadImageDimensions(bytes)) {
    format = header->format;
    if (options.reduced_jpeg_decode && format == "jpeg") {
      reduce_factor = ReducedDecodeFactor(header->width, header->height, spec.width, spec.height);
    }
    auto checked = CheckPixelCount(header->width, header->height, options.max_image_pixels,
                                   absl::StrCat(format, " image"));
    if (!checked.ok()) return checked;
  } else if (!options.decode_unchecked_formats) {
    // A decompression bomb in a format we cannot size would be allocated
    // before any check of ours: refuse rather than trust the decoder.
    return Refusal(
        absl::InvalidArgumentError(absl::StrCat(
            "could not read the image size from its header (", bytes.size(),
            " bytes): the server decodes PNG, JPEG and BMP, whose size it checks before decoding; "
            "this is another format (TIFF, WebP, PxM, ...), a truncated header or not an image "
            "(--decode_unchecked_formats decodes other formats)")),
        "unchecked_format");
  }
  const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat decoded =
      cv::imdecode(buffer, ImreadFlags(spec.color == ColorMode::kGray, reduce_factor));
  if (decoded.empty() && format == "gif") {
    // Debian 12's OpenCV (4.6) has no GIF decoder: a valid GIF fails here too.
    return Refusal(absl::InvalidArgumentError(absl::StrCat(
                       "GIF images are not decoded (", bytes.size(),
                       " bytes): this server's OpenCV (4.6) has no GIF decoder; send PNG, JPEG or "
                       "BMP")),
                   "unsupported_format");
  }
  if (decoded.empty()) {
    return Refusal(absl::InvalidArgumentError(absl::StrCat(
                       "could not decode image (", bytes.size(), " bytes, ", format,
                       "): corrupt, truncated or not an image format the server reads (JPEG, "
                       "PNG, BMP, ...)")),
                   "undecodable");
  }
  auto checked =
      CheckPixelCount(decoded.cols, decoded.rows, options.max_image_pixels, "decoded image");
  if (!checked.ok()) return checked;
  return decoded;
}

absl::StatusOr<cv::Mat> ConvertRaw(const RawPixels& raw, ColorMode color,
                                   const PreprocessOptions& options) {
  auto checked = CheckPixelCount(raw.width, raw.height, options.max_image_pixels, "raw image");
  if (!checked.ok()) return checked;
  const int64_t expected = raw.width * raw.height * BytesPerPixel(raw.format);
  if (static_cast<int64_t>(raw.pixels.size()) != expected) {
    return Refusal(
        absl::InvalidArgumentError(absl::StrCat(
            "raw image ", raw.width, "x", raw.height, " with ", BytesPerPixel(raw.format),
            " bytes per pixel needs ", expected, " bytes of pixels, got ", raw.pixels.size())),
        "raw_size_mismatch");
  }
  const int type = raw.format == PixelFormat::kGray8 ? CV_8UC1 : CV_8UC3;
  const cv::Mat view(static_cast<int>(raw.height), static_cast<int>(raw.width), type,
                     const_cast<char*>(raw.pixels.data()));
  cv::Mat converted;
  if (color == ColorMode::kGray) {
    switch (raw.format) {
      case PixelFormat::kGray8:
        return view;
      case PixelFormat::kRgb8:
        cv::cvtColor(view, converted, cv::COLOR_RGB2GRAY);
        break;
      case PixelFormat::kBgr8:
        cv::cvtColor(view, converted, cv::COLOR_BGR2GRAY);
        break;
    }
  } else {  // the pipeline works in BGR, OpenCV's order
    switch (raw.format) {
      case PixelFormat::kGray8:
        cv::cvtColor(view, converted, cv::COLOR_GRAY2BGR);
        break;
      case PixelFormat::kRgb8:
        cv::cvtColor(view, converted, cv::COLOR_RGB2BGR);
        break;
      case PixelFormat::kBgr8:
        return view;
    }
  }
  return converted;
}

}  // namespace

Preprocessor::Preprocessor(const InputSpec& spec, const PreprocessOptions& options)
    : spec_(spec), options_(options), normalised_(spec.channels()) {
  for (int c = 0; c < spec.channels(); ++c) {
    for (int v = 0; v < 256; ++v) {
      normalised_[c][v] = (static_cast<float>(v) / 255.0f - spec.mean[c]) / spec.std[c];
    }
  }
}

absl::Status Preprocessor::Run(const ImageRef& image, float* out) const {
  if (image.kind == ImageRef::Kind::kTensor) return CopyTensor(image.tensor, out);
  try {
    absl::StatusOr<cv::Mat> pixels = image.kind == ImageRef::Kind::kEncoded
                                         ? DecodeEncoded(image.encoded, spec_, options_)
                                         : ConvertRaw(image.raw, spec_.color, options_);
    if (!pixels.ok()) return pixels.status();
    const cv::Mat fitted = FitToModel(*pixels, spec_.width, spec_.height, spec_.resize);

    // HWC uint8 (BGR for colour) -> CHW float (RGB for colour).
    const int channels = spec_.channels();
    const size_t plane = static_cast<size_t>(spec_.width) * spec_.height;
    for (int y = 0; y < spec_.height; ++y) {
      const uint8_t* row = fitted.ptr<uint8_t>(y);
      for (int c = 0; c < channels; ++c) {
        const int source_channel = channels == 3 ? 2 - c : 0;
        const auto& lut = normalised_[c];
        float* dst = out + c * plane + static_cast<size_t>(y) * spec_.width;
        for (int x = 0; x < spec_.width; ++x) {
          dst[x] = lut[row[x * channels + source_channel]];
        }
      }
    }
    return absl::OkStatus();
  } catch (const cv::Exception& e) {
    return Refusal(
        absl::InvalidArgumentError(absl::StrCat("image could not be processed: ", e.what())),
        "undecodable");
  }
}

absl::Status Preprocessor::CopyTensor(absl::string_view bytes, float* out) const {
  const size_t expected = spec_.tensor_size() * sizeof(float);
  if (bytes.size() != expected) {
    return Refusal(absl::InvalidArgumentError(
                       absl::StrCat("a preprocessed tensor has ", bytes.size(),
                                    " bytes; the model takes ", spec_.channels(), "x", spec_.height,
                                    "x", spec_.width, " float32 (", expected, " bytes)")),
                   "raw_size_mismatch");
  }
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire's float32 is little-endian");
  std::memcpy(out, bytes.data(), expected);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> Preprocessor::Run(const ImageRef& image) const {
  std::vector<float> tensor(spec_.tensor_size());
  absl::Status status = Run(image, tensor.data());
  if (!status.ok()) return status;
  return tensor;
}

}  // namespace matid
