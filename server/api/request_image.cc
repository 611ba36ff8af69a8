#include "server/api/request_image.h"

#include "server/core/refusal.h"

namespace matid {

absl::StatusOr<ImageRef> ToImageRef(const v1::Image& image) {
  switch (image.data_case()) {
    case v1::Image::kEncoded:
      return ImageRef::Encoded(image.encoded());
    case v1::Image::kRaw: {
      const v1::RawImage& raw = image.raw();
      RawPixels pixels;
      pixels.width = raw.width();
      pixels.height = raw.height();
      pixels.pixels = raw.pixels();
      switch (raw.format()) {
        case v1::PIXEL_FORMAT_GRAY8:
          pixels.format = PixelFormat::kGray8;
          break;
        case v1::PIXEL_FORMAT_RGB8:
          pixels.format = PixelFormat::kRgb8;
          break;
        case v1::PIXEL_FORMAT_BGR8:
          pixels.format = PixelFormat::kBgr8;
          break;
        default:
          return Refusal(absl::InvalidArgumentError("image.raw.format must be GRAY8, RGB8 or BGR8"),
                         "bad_pixel_format");
      }
      return ImageRef::Raw(pixels);
    }
    case v1::Image::DATA_NOT_SET:
      break;
  }
  return Refusal(absl::InvalidArgumentError(
                     "image is missing: set image.encoded (file bytes) or image.raw (pixels)"),
                 "missing_image");
}

}  // namespace matid
