// An image as a request carries it: encoded file bytes, or raw pixels. A view:
// it borrows the request's bytes, which must outlive it. Plain value type.
#ifndef MATID_SERVER_IMAGE_H_
#define MATID_SERVER_IMAGE_H_

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
  enum class Kind { kEncoded, kRaw };
  Kind kind = Kind::kEncoded;
  absl::string_view encoded;  // when kind == kEncoded: JPEG, PNG, BMP, ...
  RawPixels raw;              // when kind == kRaw

  static ImageRef Encoded(absl::string_view bytes) {
    ImageRef image;
    image.encoded = bytes;
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

#endif  // MATID_SERVER_IMAGE_H_
