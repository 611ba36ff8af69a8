// Where camera frames come from: a V4L2 device index, an RTSP/HTTP URL or a
// video file (all through OpenCV's VideoCapture), or a folder of images
// (sorted by name, optionally looping). One thread reads a source.
#ifndef MATID_CAMERA_FRAME_SOURCE_H_
#define MATID_CAMERA_FRAME_SOURCE_H_

#include <memory>
#include <opencv2/core.hpp>
#include <string>

#include "absl/status/statusor.h"

namespace matid {

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // The next frame (BGR or gray), or OUT_OF_RANGE when the source has ended.
  virtual absl::StatusOr<cv::Mat> Next() = 0;
  virtual std::string description() const = 0;
};

// `spec`: a number (device index), a URL (rtsp://, http://, ...), a video
// file, or a directory of images. `loop` repeats a folder or file forever.
absl::StatusOr<std::unique_ptr<FrameSource>> OpenFrameSource(const std::string& spec, bool loop);

}  // namespace matid

#endif  // MATID_CAMERA_FRAME_SOURCE_H_
