// How a captured frame becomes the image a camera sends: its region of
// interest, shrunk to the model's input when the server said what that is,
// as JPEG or raw BGR pixels; and how small a source may decode a frame for
// that model. Pure functions; safe from any thread.
#ifndef MATID_CLIENT_CAMERA_FRAME_ENCODING_H_
#define MATID_CLIENT_CAMERA_FRAME_ENCODING_H_

#include <opencv2/core.hpp>
#include <optional>

#include "absl/status/statusor.h"
#include "client/camera/frame_source.h"
#include "common/model_input_fit.h"
#include "matid/v1/matid.pb.h"

namespace matid {

// The model input the server fits images to, from its Health.
struct ModelFit {
  int width = 0;
  int height = 0;
  ResizeMode mode = ResizeMode::kStretch;
};

// The part of a frame decoded at 1/`scale` that `roi` (full-resolution
// coordinates; empty: the whole frame) covers. INVALID_ARGUMENT when the
// region lies outside the frame.
absl::StatusOr<cv::Mat> RegionOfInterest(const cv::Mat& frame, int scale, const cv::Rect& roi);

// The decode scale a source may use so that the ROI still covers `fit`
// (nullptr, meaning whole frames, when the fit is unknown).
DecodeScale DecodeScaleFor(const std::optional<ModelFit>& fit, const cv::Rect& roi);

// `roi_view` shrunk to `fit` when known, as JPEG at `jpeg_quality` (1..100)
// or, with quality 0, raw BGR pixels. INTERNAL when OpenCV fails.
absl::StatusOr<v1::Image> EncodeFrame(const cv::Mat& roi_view, const std::optional<ModelFit>& fit,
                                      int jpeg_quality);

}  // namespace matid

#endif  // MATID_CLIENT_CAMERA_FRAME_ENCODING_H_
