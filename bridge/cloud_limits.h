// AWS IoT Core's limits on one publish (its message broker quotas): a payload
// of at most 128 KB and a topic of at most 256 bytes with at most 7 slashes
// and no wildcard. The bridge checks every message against them when it is
// routed, so that one the cloud would refuse goes to the dead letters with
// the reason instead of being retried ahead of every message behind it.
// Pure functions: safe from any thread.
#ifndef MATID_BRIDGE_CLOUD_LIMITS_H_
#define MATID_BRIDGE_CLOUD_LIMITS_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace matid {

inline constexpr int64_t kCloudMaxPayloadBytes = 128 * 1024;
inline constexpr size_t kCloudMaxTopicBytes = 256;
inline constexpr int kCloudMaxTopicSlashes = 7;

// INVALID_ARGUMENT naming the limit when the cloud would refuse `topic`.
absl::Status CheckCloudTopic(absl::string_view topic);
// INVALID_ARGUMENT naming the limit when a payload of `bytes` is too large.
absl::Status CheckCloudPayload(size_t bytes);

}  // namespace matid

#endif  // MATID_BRIDGE_CLOUD_LIMITS_H_
