// Where camera frames come from: a V4L2 device index, an RTSP/HTTP URL or a
// video file (all through OpenCV's VideoCapture), or a folder of images
// (sorted by name, optionally looping). Sources whose frames are JPEGs (an
// MJPEG video file or stream, JPEG files) decode them at a reduced scale
// when the caller asks for it: libjpeg's scaled decoding is several times
// cheaper than a full decode, and a camera that only needs a 224x224 model
// input need not pay for 1920x1080 pixels. One thread reads a source.
#ifndef MATID_CLIENT_CAMERA_FRAME_SOURCE_H_
#define MATID_CLIENT_CAMERA_FRAME_SOURCE_H_

#include <functional>
#include <memory>
#include <opencv2/core.hpp>
#include <string>

#include "absl/status/statusor.h"

namespace matid {

// One captured frame.
struct Frame {
  cv::Mat pixels;    // BGR, at 1/scale of the source's resolution
  int scale = 1;     // 1, 2, 4 or 8
  std::string jpeg;  // the frame as delivered when it was a JPEG (decoded again at
                     // full size only if wanted, e.g. for an inspection image)
};

// The decode scale (1, 2, 4 or 8) wanted for a frame of width x height.
using DecodeScale = std::function<int(int width, int height)>;

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // The next frame, or OUT_OF_RANGE when the source has ended. JPEG frames
  // are decoded at the scale `scale_for` picks (empty: full size); other
  // frames always come at full size (scale 1).
  virtual absl::StatusOr<Frame> Next(const DecodeScale& scale_for) = 0;
  virtual std::string description() const = 0;
};

// Decodes `jpeg` at the scale `scale_for` picks from its header; `scale`
// tells which. INVALID_ARGUMENT when it is not a decodable JPEG.
absl::StatusOr<Frame> DecodeJpegFrame(std::string jpeg, const DecodeScale& scale_for);

// `spec`: a number (device index), a URL (rtsp://, http://, ...), a video
// file, or a directory of images. `loop` repeats a folder or file forever.
absl::StatusOr<std::unique_ptr<FrameSource>> OpenFrameSource(const std::string& spec, bool loop);

}  // namespace matid

#endif  // MATID_CLIENT_CAMERA_FRAME_SOURCE_H_
