// The camera's frames between capture and answer: a bounded queue of frames
// captured and not sent (the oldest dropped beyond max_pending, so capture
// never waits for a slow server) and the frames sent and not answered, by
// sequence number. Frames a stream did not get answered, or the server was
// too busy for, go back to the front in order. A plain data structure with
// no lock of its own: the camera guards it with its mutex.
#ifndef MATID_CLIENT_CAMERA_FRAME_QUEUE_H_
#define MATID_CLIENT_CAMERA_FRAME_QUEUE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "client/camera/frame_capture.h"
#include "matid/v1/matid.pb.h"

namespace matid {

// One captured frame on its way: what is sent, and (for inspection only)
// the whole frame at full resolution.
struct PendingFrame {
  uint64_t seq = 0;
  absl::Time captured_at;
  v1::Image image;
  FullFrame full;
};

class FrameQueue {
 public:
  explicit FrameQueue(int max_pending) : max_pending_(max_pending) {}

  // Queues a captured frame last; returns how many old ones were dropped.
  int Push(PendingFrame frame);
  // Puts frames back at the front, in their order; returns how many were
  // dropped (oldest first) beyond max_pending.
  int Requeue(std::vector<PendingFrame> frames);
  // The oldest pending frame, now in flight (REQUIRES: has_pending()).
  // Returns the copy that is sent.
  PendingFrame Send();
  // The frame in flight with this sequence number, no longer in flight;
  // nullopt when it is not in flight (answered already).
  std::optional<PendingFrame> Answer(uint64_t seq);
  // Every frame in flight, in order, no longer in flight (a stream ended).
  std::vector<PendingFrame> TakeInFlight();

  bool has_pending() const { return !pending_.empty(); }
  int in_flight() const { return static_cast<int>(in_flight_.size()); }
  bool empty() const { return pending_.empty() && in_flight_.empty(); }

 private:
  int DropBeyondLimit();

  const int max_pending_;
  std::deque<PendingFrame> pending_;            // captured, not sent
  std::map<uint64_t, PendingFrame> in_flight_;  // sent, not answered
};

}  // namespace matid

#endif  // MATID_CLIENT_CAMERA_FRAME_QUEUE_H_
