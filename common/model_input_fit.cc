#include "common/model_input_fit.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace matid {
namespace {

// The scale factor of the fit (per axis for stretch).
cv::Size2d FitScale(const cv::Mat& src, int width, int height, ResizeMode mode) {
  const double sx = static_cast<double>(width) / src.cols;
  const double sy = static_cast<double>(height) / src.rows;
  switch (mode) {
    case ResizeMode::kStretch:
      return {sx, sy};
    case ResizeMode::kCenterCrop:
      return {std::max(sx, sy), std::max(sx, sy)};
    case ResizeMode::kLetterbox:
      return {std::min(sx, sy), std::min(sx, sy)};
  }
  return {sx, sy};
}

}  // namespace

std::optional<ResizeMode> ParseResizeMode(absl::string_view name) {
  if (name.empty() || name == "stretch") return ResizeMode::kStretch;
  if (name == "center_crop") return ResizeMode::kCenterCrop;
  if (name == "letterbox") return ResizeMode::kLetterbox;
  return std::nullopt;
}

absl::string_view ResizeModeName(ResizeMode mode) {
  switch (mode) {
    case ResizeMode::kStretch:
      return "stretch";
    case ResizeMode::kCenterCrop:
      return "center_crop";
    case ResizeMode::kLetterbox:
      return "letterbox";
  }
  return "stretch";
}

cv::Mat ResizeTo(const cv::Mat& src, cv::Size size) {
  if (src.cols == size.width && src.rows == size.height) return src;
  const int interpolation =
      (src.cols >= size.width && src.rows >= size.height) ? cv::INTER_AREA : cv::INTER_LINEAR;
  cv::Mat resized;
  cv::resize(src, resized, size, 0, 0, interpolation);
  return resized;
}

cv::Mat ScaleForModel(const cv::Mat& src, int width, int height, ResizeMode mode) {
  switch (mode) {
    case ResizeMode::kStretch:
      return ResizeTo(src, {width, height});
    case ResizeMode::kCenterCrop: {
      // Scale so the image covers the target, then cut the middle out.
      const double scale = FitScale(src, width, height, mode).width;
      const int sw = std::max(width, static_cast<int>(std::lround(src.cols * scale)));
      const int sh = std::max(height, static_cast<int>(std::lround(src.rows * scale)));
      const cv::Mat scaled = ResizeTo(src, {sw, sh});
      return scaled(cv::Rect((sw - width) / 2, (sh - height) / 2, width, height));
    }
    case ResizeMode::kLetterbox: {
      // Scale so the image fits inside the target.
      const double scale = FitScale(src, width, height, mode).width;
      const int sw = std::clamp(static_cast<int>(std::lround(src.cols * scale)), 1, width);
      const int sh = std::clamp(static_cast<int>(std::lround(src.rows * scale)), 1, height);
      return ResizeTo(src, {sw, sh});
    }
  }
  return ResizeTo(src, {width, height});
}

cv::Mat FitToModel(const cv::Mat& src, int width, int height, ResizeMode mode) {
  const cv::Mat scaled = ScaleForModel(src, width, height, mode);
  if (scaled.cols == width && scaled.rows == height) return scaled;
  // Letterbox: pad the rest with black, the image in the middle.
  cv::Mat canvas = cv::Mat::zeros(height, width, src.type());
  scaled.copyTo(canvas(
      cv::Rect((width - scaled.cols) / 2, (height - scaled.rows) / 2, scaled.cols, scaled.rows)));
  return canvas;
}

int ReducedDecodeFactor(int64_t width, int64_t height, int input_width, int input_height) {
  for (int factor : {8, 4, 2}) {
    if (width / factor >= input_width && height / factor >= input_height) return factor;
  }
  return 1;
}

int ImreadFlags(bool gray, int factor) {
  switch (factor) {
    case 2:
      return gray ? cv::IMREAD_REDUCED_GRAYSCALE_2 : cv::IMREAD_REDUCED_COLOR_2;
    case 4:
      return gray ? cv::IMREAD_REDUCED_GRAYSCALE_4 : cv::IMREAD_REDUCED_COLOR_4;
    case 8:
      return gray ? cv::IMREAD_REDUCED_GRAYSCALE_8 : cv::IMREAD_REDUCED_COLOR_8;
    default:
      return gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR;
  }
}

cv::Mat ShrinkForModel(const cv::Mat& src, int width, int height, ResizeMode mode) {
  const cv::Size2d scale = FitScale(src, width, height, mode);
  if (scale.width >= 1.0 || scale.height >= 1.0) return src;  // the fit would enlarge an axis
  return ScaleForModel(src, width, height, mode);
}

}  // namespace matid
