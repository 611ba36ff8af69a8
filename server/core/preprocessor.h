// Turns a request's image into the model's input tensor: decode (OpenCV),
// colour conversion, resize as the metadata says, scale to [0, 1], subtract
// mean, divide by std, lay out as CHW float. A tensor preprocessed by the
// caller (ImageRef::kTensor) is only checked for size and copied. Every refusal is an
// INVALID_ARGUMENT that says what was wrong and what the limit is.
// Immutable after construction: Run() may be called from many threads.
#ifndef MATID_SERVER_CORE_PREPROCESSOR_H_
#define MATID_SERVER_CORE_PREPROCESSOR_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/backend/model_info.h"
#include "server/core/image.h"

namespace matid {

struct PreprocessOptions {
  // Largest decoded image accepted, in pixels (width * height). Checked from
  // the file header before decoding where the format allows it.
  int64_t max_image_pixels = 40'000'000;
  // Largest encoded image accepted, in bytes.
  int64_t max_encoded_bytes = 16 << 20;
  // Formats whose size cannot be read from the header before decoding (TIFF,
  // WebP, PxM, JPEG 2000, ...) are refused unless this is set; OpenCV then
  // allocates whatever the file claims, up to 2^30 pixels, before the
  // decoded size is checked. PNG, JPEG and BMP are always size-checked first.
  bool decode_unchecked_formats = false;
  // A JPEG at least twice the model input in both dimensions is decoded at
  // 1/2, 1/4 or 1/8 scale (libjpeg's scaled DCT: the largest factor that
  // still leaves at least the model input), then fitted as usual. A 1080p
  // frame costs a sixth of a full decode; pixels differ slightly from it
  // (top-1 agreement with offline predictions 99.84%, bench/RESULTS.md).
  // false: every image decoded whole, exactly the reference preprocessing.
  bool reduced_jpeg_decode = true;
};

class Preprocessor {
 public:
  Preprocessor(const InputSpec& spec, const PreprocessOptions& options);

  // Writes spec.tensor_size() floats to `out`.
  // REQUIRES: `out` has room for spec.tensor_size() floats.
  absl::Status Run(const ImageRef& image, float* out) const;

  // Convenience form that allocates the output.
  absl::StatusOr<std::vector<float>> Run(const ImageRef& image) const;

  const InputSpec& spec() const { return spec_; }

 private:
  absl::Status CopyTensor(absl::string_view bytes, float* out) const;

  // Constant after construction.
  InputSpec spec_;
  PreprocessOptions options_;
  // normalised_[c][v] = (v / 255 - mean[c]) / std[c] for every byte value v.
  std::vector<std::array<float, 256>> normalised_;
};

}  // namespace matid

#endif  // MATID_SERVER_CORE_PREPROCESSOR_H_
