// Why an image or request was refused, attached to the refusing absl::Status
// as a payload, so metrics count refusals by reason without parsing
// messages (matid_refusals_total{reason}). Pure functions.
#ifndef MATID_SERVER_REFUSAL_H_
#define MATID_SERVER_REFUSAL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"

namespace matid {

inline constexpr char kRefusalPayloadUrl[] = "type.matid.dev/refusal_reason";

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

#endif  // MATID_SERVER_REFUSAL_H_
