#include "common/image_header.h"

#include <cstdlib>

namespace matid {
namespace {

uint32_t BigEndian16(absl::string_view b, size_t at) {
  return (static_cast<uint8_t>(b[at]) << 8) | static_cast<uint8_t>(b[at + 1]);
}

uint32_t BigEndian32(absl::string_view b, size_t at) {
  return (BigEndian16(b, at) << 16) | BigEndian16(b, at + 2);
}

uint32_t LittleEndian16(absl::string_view b, size_t at) {
  return static_cast<uint8_t>(b[at]) | (static_cast<uint8_t>(b[at + 1]) << 8);
}

uint32_t LittleEndian32(absl::string_view b, size_t at) {
  return LittleEndian16(b, at) | (LittleEndian16(b, at + 2) << 16);
}

std::optional<ImageDimensions> ReadPng(absl::string_view b) {
  // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4).
  if (b.size() < 24 || b.substr(12, 4) != "IHDR") return std::nullopt;
  return ImageDimensions{"png", BigEndian32(b, 16), BigEndian32(b, 20)};
}

std::optional<ImageDimensions> ReadJpeg(absl::string_view b) {
  size_t at = 2;  // after SOI
  while (at + 4 <= b.size()) {
    if (static_cast<uint8_t>(b[at]) != 0xFF) return std::nullopt;
    const uint8_t marker = static_cast<uint8_t>(b[at + 1]);
    if (marker == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
      at += 2;
      continue;
    }
    const uint32_t length = BigEndian16(b, at + 2);
    const bool start_of_frame =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (start_of_frame) {
      // length (2), precision (1), height (2), width (2)
      if (at + 9 > b.size()) return std::nullopt;
      return ImageDimensions{"jpeg", BigEndian16(b, at + 7), BigEndian16(b, at + 5)};
    }
    if (length < 2) return std::nullopt;
    at += 2 + length;
  }
  return std::nullopt;
}

std::optional<ImageDimensions> ReadBmp(absl::string_view b) {
  if (b.size() < 26) return std::nullopt;
  const uint32_t header_size = LittleEndian32(b, 14);
  if (header_size == 12) {  // BITMAPCOREHEADER: 16-bit sides
    return ImageDimensions{"bmp", LittleEndian16(b, 18), LittleEndian16(b, 20)};
  }
  const auto width = static_cast<int32_t>(LittleEndian32(b, 18));
  const auto height = static_cast<int32_t>(LittleEndian32(b, 22));
  // A negative height means top-down rows.
  return ImageDimensions{"bmp", std::llabs(width), std::llabs(height)};
}

std::optional<ImageDimensions> ReadGif(absl::string_view b) {
  if (b.size() < 10) return std::nullopt;
  return ImageDimensions{"gif", LittleEndian16(b, 6), LittleEndian16(b, 8)};
}

}  // namespace

std::optional<ImageDimensions> ReadImageDimensions(absl::string_view bytes) {
  if (bytes.substr(0, 8) == absl::string_view("\x89PNG\r\n\x1a\n", 8)) {
    return ReadPng(bytes);
  }
  if (bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF &&
      static_cast<uint8_t>(bytes[1]) == 0xD8 && static_cast<uint8_t>(bytes[2]) == 0xFF) {
    return ReadJpeg(bytes);
  }
  if (bytes.substr(0, 2) == "BM") return ReadBmp(bytes);
  if (bytes.substr(0, 6) == "GIF87a" || bytes.substr(0, 6) == "GIF89a") {
    return ReadGif(bytes);
  }
  return std::nullopt;
}

}  // namespace matid
