// Fuzz target: image decode + preprocessing (server/preprocessor, with the
// header sniffing of server/image_header). The first bytes choose the model's
// input spec, raw pixels or an encoded file, whether formats without a
// size check are decoded and whether large JPEGs are decoded at reduced scale.
// Invariants: never crash; a refusal is INVALID_ARGUMENT with a message and a
// reason; an accepted image gives exactly the spec's tensor, every value the
// normalisation of some byte (finite, in range).
#include <cmath>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_check.h"
#include "server/core/preprocessor.h"
#include "server/core/refusal.h"

namespace {

constexpr float kMean = 0.5f;
constexpr float kStd = 0.25f;

matid::InputSpec SpecFrom(uint8_t flags, uint8_t width, uint8_t height) {
  matid::InputSpec spec;
  spec.color = (flags & 1) ? matid::ColorMode::kRgb : matid::ColorMode::kGray;
  spec.resize = static_cast<matid::ResizeMode>(((flags >> 1) & 3) % 3);
  spec.width = 1 + width % 64;
  spec.height = 1 + height % 64;
  spec.mean.assign(spec.channels(), kMean);
  spec.std.assign(spec.channels(), kStd);
  return spec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr int64_t kMaxPixels = 1 << 22;  // smaller than the server's default: keeps runs fast
  if (size < 3) return 0;
  const matid::InputSpec spec = SpecFrom(data[0], data[1], data[2]);
  const bool raw = (data[0] & 8) != 0;
  const bool unchecked_formats = (data[0] & 16) != 0;
  const bool full_jpeg_decode = (data[0] & 32) != 0;
  data += 3;
  size -= 3;

  matid::PreprocessOptions options;
  options.max_image_pixels = kMaxPixels;
  options.max_encoded_bytes = 1 << 20;
  // Also reach OpenCV's other decoders (scripts/fuzz.sh caps them with
  // OPENCV_IO_MAX_IMAGE_PIXELS, the way an operator enabling this should).
  options.decode_unchecked_formats = unchecked_formats;
  options.reduced_jpeg_decode = !full_jpeg_decode;
  const matid::Preprocessor preprocessor(spec, options);

  matid::ImageRef image;
  if (raw) {
    if (size < 3) return 0;
    matid::RawPixels pixels;
    pixels.width = data[0];
    pixels.height = data[1];
    pixels.format = static_cast<matid::PixelFormat>(data[2] % 3);
    pixels.pixels = absl::string_view(reinterpret_cast<const char*>(data + 3), size - 3);
    image = matid::ImageRef::Raw(pixels);
  } else {
    image = matid::ImageRef::Encoded(absl::string_view(reinterpret_cast<const char*>(data), size));
  }

  absl::StatusOr<std::vector<float>> tensor = preprocessor.Run(image);
  if (!tensor.ok()) {
    FUZZ_CHECK(tensor.status().code() == absl::StatusCode::kInvalidArgument,
               std::string(tensor.status().ToString()).c_str());
    FUZZ_CHECK(!tensor.status().message().empty(), "refusal without a message");
    FUZZ_CHECK(tensor.status().GetPayload(matid::kRefusalPayloadUrl).has_value(),
               std::string(tensor.status().message()).c_str());
    return 0;
  }
  FUZZ_CHECK(tensor->size() == spec.tensor_size(), "tensor size differs from the spec");
  const float low = (0.0f - kMean) / kStd - 1e-4f;
  const float high = (1.0f - kMean) / kStd + 1e-4f;
  for (float value : *tensor) {
    FUZZ_CHECK(std::isfinite(value) && value >= low && value <= high,
               "value outside the normalised byte range");
  }
  return 0;
}
