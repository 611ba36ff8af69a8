// Why an image or request was refused, attached to the refusing absl::Status
// as a payload, so metrics count refusals by reason without parsing
// messages (matid_refusals_total{reason}). Pure functions.
#ifndef MATID_SERVER_CORE_REFUSAL_H_
#define MATID_SERVER_CORE_REFUSAL_H_

#include <array>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"

namespace matid {

inline constexpr char kRefusalPayloadUrl[] = "type.matid.dev/refusal_reason";

// Every reason the server attaches. Metrics keep one counter handle per
// reason and export each from the start (at 0), so alerts see the series
// before the first refusal. A reason missing here is still counted.
inline constexpr std::array<absl::string_view, 21> kRefusalReasons = {
    "bad_pixel_format", "batch_empty",      "batch_too_large",   "cancelled",
    "duplicate_output", "deadline_expired", "empty_image",       "encoded_too_large",
    "missing_image",    "model_not_found",  "model_not_named",   "model_unavailable",
    "not_serving",      "queue_full",       "raw_size_mismatch", "shutting_down",
    "too_many_pixels",  "unchecked_format", "undecodable",       "unsupported_format",
    "zero_size"};

// `status` with `reason` (snake_case, e.g. "too_many_pixels") attached.
inline absl::Status Refusal(absl::Status status, absl::string_view reason) {
  status.SetPayload(kRefusalPayloadUrl, absl::Cord(reason));
  return status;
}

// The attached reason, or the status code's name in snake case
// ("resource_exhausted") when none was attached. "" for OK.
inline std::string RefusalReason(const absl::Status& status) {
  if (status.ok()) return "";
  if (auto reason = status.GetPayload(kRefusalPayloadUrl)) return std::string(*reason);
  return absl::AsciiStrToLower(absl::StatusCodeToString(status.code()));
}

}  // namespace matid

#endif  // MATID_SERVER_CORE_REFUSAL_H_
