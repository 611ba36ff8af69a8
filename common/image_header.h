// Reads an encoded image's width and height from its header, without
// decoding it, so a decompression bomb (a tiny file that claims a huge
// image) is refused before any pixel memory is allocated. Pure function,
// safe from any thread.
#ifndef MATID_COMMON_IMAGE_HEADER_H_
#define MATID_COMMON_IMAGE_HEADER_H_

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace matid {

struct ImageDimensions {
  absl::string_view format;  // "png", "jpeg", "bmp" or "gif"
  int64_t width = 0;
  int64_t height = 0;
};

// Returns the dimensions for PNG, JPEG, BMP and GIF headers, or nullopt when
// the format is another one or the header is cut short (the decoder then
// has the last word).
std::optional<ImageDimensions> ReadImageDimensions(absl::string_view bytes);

}  // namespace matid

#endif  // MATID_COMMON_IMAGE_HEADER_H_
