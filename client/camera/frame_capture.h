// Saving frames from the line as training photos: `--capture_dir DIR
// --capture_label NAME` writes one kept frame in `every` (full resolution,
// the whole ROI, as JPEG) to DIR/NAME/<message id>.jpg, the folder-per-class
// layout `model_export prepare --source DIR` reads. Bounded like the
// inspection folder (FolderBudget over DIR/NAME), and never in the way of
// classification: Offer() only queues; one writer thread of its own encodes
// and writes, and a frame that finds the queue full is counted, not waited
// for.
// Thread-safety: Offer() from one thread (the capture loop); the counts from
// any thread. The destructor writes what is queued, then stops the writer.
#ifndef MATID_CLIENT_CAMERA_FRAME_CAPTURE_H_
#define MATID_CLIENT_CAMERA_FRAME_CAPTURE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/camera/frame_folder.h"
#include "common/folder_budget.h"
#include "prometheus/counter.h"

namespace matid {

struct FrameCaptureOptions {
  std::string dir;    // --capture_dir (empty: no capture)
  std::string label;  // --capture_label: the class folder under dir
  int every = 1;      // --capture_every: one kept frame in N
  int max_files = 1000;
  int64_t max_mb = 2048;
  int max_queued = 4;  // frames waiting for the writer; more are skipped, counted
};

// OK, or INVALID_ARGUMENT naming the flag: a label that is not a plain
// folder name (letters, digits, '.', '_', '-'; not starting with '.'), a
// label without a dir or the other way round, counts out of range.
absl::Status ValidateFrameCaptureOptions(const FrameCaptureOptions& options);

struct FrameCaptureCounters {
  prometheus::Counter* saved = nullptr;
  prometheus::Counter* skipped_busy = nullptr;  // the writer's queue was full
  prometheus::Counter* folder_full = nullptr;
  prometheus::Counter* write_failures = nullptr;
};

class FrameCapture {
 public:
  // Validates, creates DIR/LABEL (PERMISSION_DENIED naming --capture_dir
  // when it cannot be written) and starts the writer.
  static absl::StatusOr<std::unique_ptr<FrameCapture>> Create(const FrameCaptureOptions& options,
                                                              FrameCaptureCounters counters);
  ~FrameCapture();
  FrameCapture(const FrameCapture&) = delete;
  FrameCapture& operator=(const FrameCapture&) = delete;

  // True for the frames to save (one in `every`, counted from the first).
  bool Wants();
  // Queues a frame Wants() chose; skipped (counted) when the queue is full.
  void Offer(FullFrame frame, const std::string& name);

  int64_t saved() const;

 private:
  FrameCapture(const FrameCaptureOptions& options, FrameCaptureCounters counters,
               std::unique_ptr<FrameFolder> folder);
  void WriteLoop();

  const FrameCaptureOptions options_;
  const FrameCaptureCounters counters_;
  const std::unique_ptr<FrameFolder> folder_;  // dir/label; the writer thread saves into it
  int64_t offered_ = 0;                        // capture thread only

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::pair<FullFrame, std::string>> queue_;  // guarded by mu_
  bool stopping_ = false;                                // guarded by mu_
  int64_t saved_ = 0;                                    // guarded by mu_
  std::thread writer_;  // last: starts after everything above exists
};

}  // namespace matid

#endif  // MATID_CLIENT_CAMERA_FRAME_CAPTURE_H_
