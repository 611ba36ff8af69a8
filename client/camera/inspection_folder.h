// Frames needing inspection, saved for a person to label: the whole ROI at
// full resolution as DIR/<message id>.jpg, within a budget of files and
// megabytes (common/folder_budget.h). A full folder counts the frame and
// logs once each time it fills; nothing blocks. Thread-safety: Save() may be
// called from any thread.
#ifndef MATID_CLIENT_CAMERA_INSPECTION_FOLDER_H_
#define MATID_CLIENT_CAMERA_INSPECTION_FOLDER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/camera/frame_capture.h"
#include "common/folder_budget.h"
#include "prometheus/counter.h"

namespace matid {

class InspectionFolder {
 public:
  struct Counters {  // each may be nullptr
    prometheus::Counter* folder_full = nullptr;
    prometheus::Counter* write_failures = nullptr;
  };
  // PERMISSION_DENIED naming --inspection_dir when `dir` cannot be written.
  static absl::StatusOr<std::unique_ptr<InspectionFolder>> Create(const std::string& dir,
                                                                  int max_files, int64_t max_mb,
                                                                  Counters counters);

  void Save(const FullFrame& frame, const std::string& message_id);

 private:
  InspectionFolder(const std::string& dir, int max_files, int64_t max_mb, Counters counters);

  const std::string dir_;
  const int max_files_;
  const int64_t max_mb_;
  const Counters counters_;
  FolderBudget budget_;
  std::atomic<bool> full_{false};  // logged once per time it fills
};

}  // namespace matid

#endif  // MATID_CLIENT_CAMERA_INSPECTION_FOLDER_H_
