// A model lifecycle event the server publishes on matid/<box_id>/events and
// the bridge forwards (see docs/event-message.schema.json): a shadow version
// promoted, a promoted version rolled back, a rollback window closed.
// Building and parsing are pure functions, safe from any thread.
#ifndef MATID_COMMON_EVENT_MESSAGE_H_
#define MATID_COMMON_EVENT_MESSAGE_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace matid {

inline constexpr char kDefaultEventTopicTemplate[] = "matid/{box_id}/events";

struct EventMessage {
  // <box_id>-<model>-<type>-<unix ms>: unique, the same on every retry.
  std::string message_id;
  std::string box_id;
  std::string timestamp;  // RFC 3339 UTC with milliseconds
  std::string type;       // "promotion", "rollback" or "rollback_window_closed"
  std::string model;
  int64_t from_version = 0;
  int64_t to_version = 0;
  std::string trigger;  // "policy" (a rule held) or "admin" (an operator)
  std::string reason;   // the rule's figures, or who asked
  // Numbers behind the decision: compared, agreement, shadow_p99_ms;
  // images, errors, low_confidence; window_seconds.
  std::map<std::string, double> figures;
};

// Fills message_id and timestamp for an event that happened at `time`.
void StampEvent(absl::Time time, EventMessage& event);

std::string ToJson(const EventMessage& event);

// Parses and checks an event: required fields with the right types,
// non-empty ids, a known type and trigger, positive versions, finite
// figures. INVALID_ARGUMENT says what is wrong.
absl::StatusOr<EventMessage> ParseEventMessage(absl::string_view json);

}  // namespace matid

#endif  // MATID_COMMON_EVENT_MESSAGE_H_
