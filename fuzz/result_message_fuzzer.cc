// Fuzz target: the bridge's message parser (common/result_message), which
// reads whatever arrives on the local broker. Invariants: never crash; a
// refusal is INVALID_ARGUMENT with a message; an accepted message satisfies
// the documented checks and survives ToJson -> ParseResultMessage unchanged.
#include <cmath>
#include <cstdint>
#include <string>

#include "common/result_message.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
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
