#include "client/camera/frame_encoding.h"

#include <algorithm>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace matid {

absl::StatusOr<cv::Mat> RegionOfInterest(const cv::Mat& frame, int scale, const cv::Rect& roi) {
  if (roi.empty()) return frame;
  const cv::Rect scaled(roi.x / scale, roi.y / scale, std::max(1, roi.width / scale),
                        std::max(1, roi.height / scale));
  const cv::Rect inside = scaled & cv::Rect(0, 0, frame.cols, frame.rows);
  if (inside.empty()) return absl::InvalidArgumentError("region of interest is outside the frame");
  return frame(inside);
}

DecodeScale DecodeScaleFor(const std::optional<ModelFit>& fit, const cv::Rect& roi) {
  if (!fit) return nullptr;
  return [fit, roi](int width, int height) {
    const cv::Rect frame(0, 0, width, height);
    const cv::Rect region = roi.empty() ? frame : (roi & frame);
    return ReducedDecodeFactor(region.width, region.height, fit->width, fit->height);
  };
}

absl::StatusOr<v1::Image> EncodeFrame(const cv::Mat& roi_view, const std::optional<ModelFit>& fit,
                                      int jpeg_quality) try {
  const cv::Mat view =
      fit ? ShrinkForModel(roi_view, fit->width, fit->height, fit->mode) : roi_view;
  v1::Image image;
  if (jpeg_quality > 0) {
    std::vector<uint8_t> bytes;
    if (!cv::imencode(".jpg", view, bytes, {cv::IMWRITE_JPEG_QUALITY, jpeg_quality})) {
      return absl::InternalError("JPEG encoding failed");
    }
    image.set_encoded(std::string(bytes.begin(), bytes.end()));
    return image;
  }
  // Raw BGR: written once, straight into the message's buffer.
  v1::RawImage* raw = image.mutable_raw();
  raw->set_width(view.cols);
  raw->set_height(view.rows);
  raw->set_format(v1::PIXEL_FORMAT_BGR8);
  std::string* pixels = raw->mutable_pixels();
  pixels->resize(view.total() * 3);
  cv::Mat into(view.rows, view.cols, CV_8UC3, pixels->data());
  if (view.channels() == 3) {
    view.copyTo(into);
  } else {
    cv::cvtColor(view, into, cv::COLOR_GRAY2BGR);
  }
  return image;
} catch (const cv::Exception& e) {
  return absl::InternalError(absl::StrCat("frame could not be encoded: ", e.what()));
}

}  // namespace matid
