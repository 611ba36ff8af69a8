// Frames saved for people: the whole ROI at full resolution as DIR/NAME.jpg,
// within a budget of files and megabytes (common/folder_budget.h). Each file
// is written under a hidden name and then renamed, so a reader (labelling,
// `model_export prepare`) never sees half a file. A full folder counts the
// frame and logs once each time it fills; a failed write gives its room
// back. Used for frames needing inspection (--inspection_dir) and training
// photos from the line (frame_capture.h).
// Thread-safety: Save() may be called from any thread.
#ifndef MATID_CLIENT_CAMERA_FRAME_FOLDER_H_
#define MATID_CLIENT_CAMERA_FRAME_FOLDER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <opencv2/core.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "common/folder_budget.h"
#include "prometheus/counter.h"

namespace matid {

// What may be saved of one frame: the whole ROI at full resolution, or the
// frame's JPEG when the source decoded it at reduced scale.
struct FullFrame {
  cv::Mat pixels;    // BGR, shared with the frame (never written after capture), or empty
  std::string jpeg;  // or the frame as the source read it
  cv::Rect roi;      // in full-resolution coordinates; empty: whole frame
};

// The frame a person labels or a model trains on: the ROI at full
// resolution, as JPEG. INTERNAL when OpenCV fails. Pure; any thread.
absl::StatusOr<std::string> FullResolutionJpeg(const FullFrame& frame);

struct FrameFolderOptions {
  std::string dir;
  int max_files = 1000;
  int64_t max_mb = 1024;
  std::string dir_flag;   // names the folder in errors: "--inspection_dir"
  std::string what;       // names a frame in log lines: "inspection frame"
  std::string when_full;  // the warning logged once each time the folder fills
};

class FrameFolder {
 public:
  struct Counters {  // each may be nullptr
    prometheus::Counter* saved = nullptr;
    prometheus::Counter* folder_full = nullptr;
    prometheus::Counter* write_failures = nullptr;
  };
  // Creates the folder; PERMISSION_DENIED naming dir_flag when it cannot be
  // written.
  static absl::StatusOr<std::unique_ptr<FrameFolder>> Create(FrameFolderOptions options,
                                                             Counters counters);

  // True when DIR/NAME.jpg was written; a full folder or a failure is
  // counted and logged.
  bool Save(const FullFrame& frame, const std::string& name);

 private:
  FrameFolder(FrameFolderOptions options, Counters counters);

  const FrameFolderOptions options_;
  const Counters counters_;
  FolderBudget budget_;
  std::atomic<bool> full_{false};  // logged once per time it fills
};

}  // namespace matid

#endif  // MATID_CLIENT_CAMERA_FRAME_FOLDER_H_
