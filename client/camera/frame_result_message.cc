#include "client/camera/frame_result_message.h"

namespace matid {

ResultMessage FrameResultMessage(const v1::FrameResult& result, const FrameOrigin& origin,
                                 absl::Time answered_at, double inspection_threshold) {
  ResultMessage message;
  message.camera_id = origin.camera_id;
  message.frame_seq = result.seq();
  message.message_id = MessageId(origin.camera_id, origin.boot_id, result.seq());
  message.timestamp = Rfc3339Millis(origin.captured_at);
  message.model_name = result.model().name();
  message.model_version = result.model().version();
  message.model_variant = result.model().variant();
  message.model_sha256 = result.model().sha256();
  for (const auto& p : result.predictions()) message.predictions.push_back({p.label(), p.score()});
  if (!message.predictions.empty()) {
    message.top_label = message.predictions.front().label;
    message.top_score = message.predictions.front().score;
  }
  message.needs_inspection = message.top_score < inspection_threshold;
  message.latency_ms = absl::ToDoubleMilliseconds(answered_at - origin.captured_at);
  return message;
}

}  // namespace matid
