// The per-frame result the camera publishes on matid/<camera_id>/results and
// the bridge forwards (see docs/result-message.schema.json). Building and
// parsing are pure functions, safe from any thread.
#ifndef MATID_COMMON_RESULT_MESSAGE_H_
#define MATID_COMMON_RESULT_MESSAGE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace matid {

struct ResultMessage {
  std::string message_id;  // <camera_id>-<boot_id>-<frame_seq>: stable across retries
  std::string timestamp;   // RFC 3339 UTC with milliseconds, when the frame was captured
  std::string camera_id;
  uint64_t frame_seq = 0;
  std::string model_name;
  std::string model_version;  // the repository version that classified the frame
  std::string model_variant;  // "fp32" or "int8"
  std::string model_sha256;   // first 12 hex digits of the model file's sha256
  struct Prediction {
    std::string label;
    double score = 0;
  };
  std::vector<Prediction> predictions;  // top-k, best first
  std::string top_label;
  double top_score = 0;
  bool needs_inspection = false;  // top_score under the camera's threshold
  double latency_ms = 0;          // capture to result
  // Set when a PLC trigger asked for the frame (matid-plc): the part id and
  // the trigger's sequence number the PLC wrote.
  struct Trigger {
    uint32_t part_id = 0;
    uint16_t seq = 0;
    uint16_t recipe = 0;
  };
  std::optional<Trigger> trigger;
};

std::string MessageId(absl::string_view camera_id, absl::string_view boot_id, uint64_t frame_seq);

// A random id for this run of a program (8 hex digits), for MessageId.
std::string NewBootId();

// "2026-11-25T06:05:04.123Z"
std::string Rfc3339Millis(absl::Time time);

std::string ToJson(const ResultMessage& message);

// Parses and checks a message: required fields present with the right
// types, non-empty ids, scores in [0, 1], latency finite and >= 0 (as
// docs/result-message.schema.json says). INVALID_ARGUMENT says what is wrong.
absl::StatusOr<ResultMessage> ParseResultMessage(absl::string_view json);

}  // namespace matid

#endif  // MATID_COMMON_RESULT_MESSAGE_H_
