#include "client/camera/frame_queue.h"

#include <utility>

namespace matid {

int FrameQueue::Push(PendingFrame frame) {
  pending_.push_back(std::move(frame));
  return DropBeyondLimit();
}

int FrameQueue::Requeue(std::vector<PendingFrame> frames) {
  for (auto it = frames.rbegin(); it != frames.rend(); ++it) pending_.push_front(std::move(*it));
  return DropBeyondLimit();
}

PendingFrame FrameQueue::Send() {
  PendingFrame frame = std::move(pending_.front());
  pending_.pop_front();
  PendingFrame sent = frame;
  in_flight_.emplace(frame.seq, std::move(frame));
  return sent;
}

std::optional<PendingFrame> FrameQueue::Answer(uint64_t seq) {
  const auto it = in_flight_.find(seq);
  if (it == in_flight_.end()) return std::nullopt;
  PendingFrame frame = std::move(it->second);
  in_flight_.erase(it);
  return frame;
}

std::vector<PendingFrame> FrameQueue::TakeInFlight() {
  std::vector<PendingFrame> frames;
  for (auto& [seq, frame] : in_flight_) frames.push_back(std::move(frame));
  in_flight_.clear();
  return frames;
}

int FrameQueue::DropBeyondLimit() {
  int dropped = 0;
  while (static_cast<int>(pending_.size()) > max_pending_) {
    pending_.pop_front();  // the oldest: never block capture on a slow server
    ++dropped;
  }
  return dropped;
}

}  // namespace matid
