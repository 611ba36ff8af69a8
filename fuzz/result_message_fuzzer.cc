// Fuzz target: the bridge's message parsers (common/result_message and
// common/event_message), which read whatever arrives on the local broker;
// each input goes to both. Invariants: never crash; a refusal is
// INVALID_ARGUMENT with a message; an accepted message satisfies the
// documented checks and survives ToJson -> Parse unchanged.
#include <cmath>
#include <cstdint>
#include <string>

#include "common/event_message.h"
#include "common/result_message.h"
#include "fuzz/fuzz_check.h"

namespace {

void CheckEvent(absl::string_view json) {
  absl::StatusOr<matid::EventMessage> event = matid::ParseEventMessage(json);
  if (!event.ok()) {
    FUZZ_CHECK(event.status().code() == absl::StatusCode::kInvalidArgument,
               std::string(event.status().ToString()).c_str());
    FUZZ_CHECK(!event.status().message().empty(), "event refusal without a message");
    return;
  }
  FUZZ_CHECK(!event->message_id.empty() && !event->box_id.empty() && !event->model.empty(),
             "empty event id accepted");
  FUZZ_CHECK(event->from_version > 0 && event->to_version > 0, "event version not positive");
  for (const auto& [name, value] : event->figures) {
    FUZZ_CHECK(std::isfinite(value), "event figure not finite");
  }
  const std::string again_json = matid::ToJson(*event);
  absl::StatusOr<matid::EventMessage> again = matid::ParseEventMessage(again_json);
  FUZZ_CHECK(again.ok(), std::string(again.status().ToString()).c_str());
  FUZZ_CHECK(matid::ToJson(*again) == again_json, "event changed in a round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  CheckEvent(json);
  absl::StatusOr<matid::ResultMessage> message = matid::ParseResultMessage(json);
  if (!message.ok()) {
    FUZZ_CHECK(message.status().code() == absl::StatusCode::kInvalidArgument,
               std::string(message.status().ToString()).c_str());
    FUZZ_CHECK(!message.status().message().empty(), "refusal without a message");
    return 0;
  }
  FUZZ_CHECK(!message->message_id.empty() && !message->camera_id.empty(), "empty id accepted");
  FUZZ_CHECK(message->top_score >= 0 && message->top_score <= 1, "top_score outside [0, 1]");
  FUZZ_CHECK(message->latency_ms >= 0 && std::isfinite(message->latency_ms), "bad latency_ms");
  for (const auto& prediction : message->predictions) {
    FUZZ_CHECK(prediction.score >= 0 && prediction.score <= 1, "score outside [0, 1]");
  }

  const std::string again_json = matid::ToJson(*message);
  absl::StatusOr<matid::ResultMessage> again = matid::ParseResultMessage(again_json);
  FUZZ_CHECK(again.ok(), std::string(again.status().ToString()).c_str());
  FUZZ_CHECK(again->message_id == message->message_id, "message_id changed in a round trip");
  FUZZ_CHECK(again->camera_id == message->camera_id, "camera_id changed in a round trip");
  FUZZ_CHECK(again->frame_seq == message->frame_seq, "frame_seq changed in a round trip");
  FUZZ_CHECK(again->timestamp == message->timestamp, "timestamp changed in a round trip");
  FUZZ_CHECK(again->predictions.size() == message->predictions.size(),
             "predictions changed in a round trip");
  FUZZ_CHECK(again->top_label == message->top_label, "top_label changed in a round trip");
  FUZZ_CHECK(again->top_score == message->top_score, "top_score changed in a round trip");
  FUZZ_CHECK(again->needs_inspection == message->needs_inspection,
             "needs_inspection changed in a round trip");
  return 0;
}
