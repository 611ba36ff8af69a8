// An image as a request carries it: encoded file bytes, raw pixels, or a
// tensor the caller has preprocessed already (the Open Inference Protocol's
// FP32 input). A view: it borrows the request's bytes, which must outlive
// it. Plain value type.
#ifndef MATID_SERVER_CORE_IMAGE_H_
#define MATID_SERVER_CORE_IMAGE_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace matid {

enum class PixelFormat { kGray8, kRgb8, kBgr8 };

inline int BytesPerPixel(PixelFormat format) { return format == PixelFormat::kGray8 ? 1 : 3; }

struct RawPixels {
  int64_t width = 0;
  int64_t height = 0;
  PixelFormat format = PixelFormat::kGray8;
  absl::string_view pixels;  // row-major, interleaved, no padding
};

struct ImageRef {
  enum class Kind { kEncoded, kRaw, kTensor };
  Kind kind = Kind::kEncoded;
  absl::string_view encoded;  // when kind == kEncoded: JPEG, PNG, BMP, ...
  RawPixels raw;              // when kind == kRaw
  // When kind == kTensor: the model's input, CHW float32 little-endian,
  // already resized and normalised; used as it is.
  absl::string_view tensor;

  static ImageRef Encoded(absl::string_view bytes) {
    ImageRef image;
    image.encoded = bytes;
    return image;
  }
  static ImageRef Tensor(absl::string_view float_bytes) {
    ImageRef image;
    image.kind = Kind::kTensor;
    image.tensor = float_bytes;
    return image;
  }
  static ImageRef Raw(RawPixels pixels) {
    ImageRef image;
    image.kind = Kind::kRaw;
    image.raw = pixels;
    return image;
  }
};

}  // namespace matid

#endif  // MATID_SERVER_CORE_IMAGE_H_
