// The camera client's engine: capture and the stream session. It reads
// frames from a FrameSource, crops the ROI, shrinks it to the model's input
// size (learned from the server's Health, so the server decodes and resizes
// far fewer pixels), streams the frames to matid-server over ClassifyStream
// (a bounded number in flight), and hands one result message per classified
// frame to a publish function. Capture never waits for the server: frames
// wait in a bounded queue and the oldest unsent one is dropped (and
// counted) when it is full. When the stream breaks (server restart), the
// frames in flight go back to the front of the queue and the stream
// reconnects with exponential backoff and jitter (back to the shortest
// delay after a stream that was answered).
// Its parts, one job each: frame_encoding.h (ROI, shrink, encode),
// frame_queue.h (the frames between capture and answer),
// frame_result_message.h (the message of an answer), frame_folder.h and
// frame_capture.h (frames saved for people), camera_metrics.h.
// Run() returns when the source ends (after every frame was answered), when
// max_frames is reached, or after Stop().
// Thread-safety: Run() once, from one thread; Stop() from any thread.
#ifndef MATID_CLIENT_CAMERA_CAMERA_H_
#define MATID_CLIENT_CAMERA_CAMERA_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/camera/camera_metrics.h"
#include "client/camera/frame_capture.h"
#include "client/camera/frame_encoding.h"
#include "client/camera/frame_folder.h"
#include "client/camera/frame_queue.h"
#include "client/camera/frame_source.h"
#include "common/backoff.h"
#include "common/model_input_fit.h"
#include "common/result_message.h"
#include "matid/v1/matid.grpc.pb.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace matid {

struct CameraOptions {
  std::string camera_id = "camera-1";
  std::string boot_id;  // unique per run; part of every message_id
  int top_k = 3;
  int max_in_flight = 4;    // frames sent and not yet answered
  int max_pending = 8;      // captured frames waiting to be sent; oldest dropped beyond
  double max_fps = 0;       // sample at most this many frames per second (0: all)
  int every_nth_frame = 1;  // keep one frame in N
  double pace_fps = 0;      // read the source no faster than this (files: real time)
  int64_t max_frames = 0;   // stop after this many captured frames (0: no limit)
  cv::Rect roi;             // crop before sending (empty: whole frame)
  // Shrink each frame (after the ROI) to the model's input size before
  // encoding, as the server would fit it; the size and resize mode come
  // from the server's Health, asked at every (re)connection.
  bool shrink_to_model = true;
  int jpeg_quality = 90;              // re-encode as JPEG (0: send raw BGR pixels)
  double inspection_threshold = 0.6;  // top score under this: needs_inspection
  std::string inspection_dir;         // save frames needing inspection here (empty: don't)
  int inspection_max_files = 1000;    // at most this many .jpg files in inspection_dir
  int64_t inspection_max_mb = 1024;   // and at most this many megabytes in it
  FrameCaptureOptions capture;        // training photos from the line (dir empty: none)
  absl::Duration reconnect_min = absl::Milliseconds(100);
  absl::Duration reconnect_max = absl::Seconds(10);
  absl::Duration frame_timeout = absl::Seconds(30);  // a stream whose results stall is restarted
};

// What happened to the frames so far; plain counts, also for a summary line.
struct CameraStats {
  int64_t captured = 0;
  int64_t classified = 0;
  int64_t dropped = 0;  // oldest unsent frames dropped because the server was behind
  int64_t failed = 0;   // refused by the server
};

// OK, or INVALID_ARGUMENT naming the flag of the first option out of range.
absl::Status ValidateCameraOptions(const CameraOptions& options);

class Camera {
 public:
  // Called for every result, on the stream's reader thread.
  using Publish = std::function<void(const ResultMessage& message)>;

  // Validates the options (INVALID_ARGUMENT naming the flag, or
  // PERMISSION_DENIED for an --inspection_dir that cannot be written), then
  // builds a camera that has not started. `registry` may be nullptr.
  static absl::StatusOr<std::unique_ptr<Camera>> Create(const CameraOptions& options,
                                                        std::unique_ptr<FrameSource> source,
                                                        std::shared_ptr<grpc::Channel> channel,
                                                        Publish publish,
                                                        prometheus::Registry* registry);

  // Captures and classifies until the source ends, max_frames, or Stop().
  // Returns OK at a clean end; the source's error otherwise.
  absl::Status Run();
  void Stop();

  CameraStats stats() const {
    return {captured_.load(), classified_.load(), dropped_.load(), failed_.load()};
  }

 private:
  Camera(const CameraOptions& options, std::unique_ptr<FrameSource> source,
         std::shared_ptr<grpc::Channel> channel, Publish publish, prometheus::Registry* registry);

  void CaptureLoop();
  // The capture loop's steps: wait until `next_read` (false once stopping),
  // turn a kept frame into what is sent, queue it (dropping the oldest past
  // max_pending).
  bool WaitToRead(absl::Time next_read);
  absl::StatusOr<PendingFrame> ToPending(Frame frame, const std::optional<ModelFit>& fit,
                                         uint64_t seq, absl::Time captured_at);
  void Queue(PendingFrame pending);
  // Counts frames the queue dropped (the oldest, past max_pending).
  void CountDropped(int dropped);
  // Runs streams until everything captured has been answered (or Stop()).
  void StreamLoop();
  // How one stream's life ended: every frame answered, or ended (broken,
  // timed out, a server's connection age) after or before any result.
  enum class StreamEnd { kAllDone, kEndedAfterResults, kEndedWithoutResults };
  StreamEnd RunOneStream();
  // The sender's next step: a frame to send (moved to in_flight_), every
  // frame answered, or a stream to restart (broken, stopped, results overdue).
  enum class SendStep { kSend, kFinished, kReconnect };
  SendStep WaitForFrameToSend(PendingFrame* frame);
  void HandleResult(const v1::FrameResult& result);
  // The server was busy or draining: `frame` goes back first in line, and
  // nothing is sent for a backoff that grows while answers stay busy.
  void RetryWhenBusy(PendingFrame frame, absl::Time now);
  // Asks the server's Health for its model input (when shrinking).
  void LearnModelFit();
  static void Add(prometheus::Counter* counter) {
    if (counter != nullptr) counter->Increment();
  }

  // Constant after construction.
  const CameraOptions options_;
  std::unique_ptr<FrameFolder> inspection_;  // set when inspection_dir is
  std::unique_ptr<FrameCapture> capture_;    // set when capture.dir is; capture thread offers
  std::unique_ptr<FrameSource> source_;      // only the capture thread reads it
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  const Publish publish_;
  CameraMetrics metrics_;

  std::mutex mu_;
  std::condition_variable changed_;
  FrameQueue frames_;           // guarded by mu_
  bool capture_done_ = false;   // guarded by mu_
  bool stopping_ = false;       // guarded by mu_
  absl::Status source_status_;  // guarded by mu_
  bool stream_broken_ = false;  // guarded by mu_: the current stream ended
  absl::Time last_result_at_;   // guarded by mu_: last result (or first send)
  // After a busy answer (RESOURCE_EXHAUSTED, UNAVAILABLE) nothing is sent
  // until then; the delay grows while answers stay busy (reconnect_min..max).
  absl::Time send_paused_until_ = absl::InfinitePast();  // guarded by mu_
  Backoff busy_backoff_;                                 // guarded by mu_
  std::optional<ModelFit> model_fit_;  // guarded by mu_: unknown until Health answers

  // Plain counts for stats(); written by the capture and reader threads.
  std::atomic<int64_t> captured_{0};
  std::atomic<int64_t> classified_{0};
  std::atomic<int64_t> dropped_{0};
  std::atomic<int64_t> failed_{0};
};

}  // namespace matid

#endif  // MATID_CLIENT_CAMERA_CAMERA_H_
