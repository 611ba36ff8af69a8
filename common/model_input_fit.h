// How an image is fitted to a model's input size, as the model's metadata
// says ("resize": stretch, center_crop or letterbox). Shared by the server's
// preprocessing and the camera, which shrinks frames before sending them so
// that the server's fit is then the identity (same geometry, same
// interpolation). Pure functions, safe from any thread; they may throw
// cv::Exception like the OpenCV calls they make.
#ifndef MATID_COMMON_MODEL_INPUT_FIT_H_
#define MATID_COMMON_MODEL_INPUT_FIT_H_

#include <cstdint>
#include <opencv2/core.hpp>
#include <optional>

#include "absl/strings/string_view.h"

namespace matid {

enum class ResizeMode { kStretch, kCenterCrop, kLetterbox };

// "stretch" (also ""), "center_crop", "letterbox"; nullopt for anything else.
std::optional<ResizeMode> ParseResizeMode(absl::string_view name);
absl::string_view ResizeModeName(ResizeMode mode);

// `src` at `size`: INTER_AREA when shrinking (averages, no aliasing),
// bilinear otherwise; `src` itself when it already has that size.
cv::Mat ResizeTo(const cv::Mat& src, cv::Size size);

// `src` scaled (and for center_crop cropped) as fitting needs, before any
// padding: stretch and center_crop give exactly width x height; letterbox
// gives the scaled image that fits inside width x height.
cv::Mat ScaleForModel(const cv::Mat& src, int width, int height, ResizeMode mode);

// ScaleForModel plus letterbox's black border: always width x height.
cv::Mat FitToModel(const cv::Mat& src, int width, int height, ResizeMode mode);

// The JPEG scale-down factor (1, 2, 4 or 8) for an image of `width` x
// `height` and a model input of `input_width` x `input_height`: the largest
// that keeps at least the model input in both dimensions, so the fit still
// only shrinks. libjpeg decodes at that scale several times faster.
int ReducedDecodeFactor(int64_t width, int64_t height, int input_width, int input_height);

// cv::imread/imdecode flags for gray or BGR at 1/`factor` scale (1, 2, 4, 8).
int ImreadFlags(bool gray, int factor);

// What a client sends so that the server's fit is the identity: the
// ScaleForModel image when it is smaller than `src`; `src` itself when
// fitting would enlarge it (the server enlarges; sending more pixels would
// not add any).
cv::Mat ShrinkForModel(const cv::Mat& src, int width, int height, ResizeMode mode);

}  // namespace matid

#endif  // MATID_COMMON_MODEL_INPUT_FIT_H_
