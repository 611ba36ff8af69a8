// The one check of a Sparkplug id (group, edge node, primary host): it is
// a topic level, so it must be non-empty and hold no '/', '+' or '#'. A
// pure function, safe from any thread.
#ifndef MATID_SPARKPLUG_SPARKPLUG_ID_H_
#define MATID_SPARKPLUG_SPARKPLUG_ID_H_

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace matid::sparkplug {

// INVALID_ARGUMENT naming --`flag` when `id` cannot be a topic level.
inline absl::Status CheckSparkplugId(absl::string_view id, absl::string_view flag) {
  if (id.empty() || absl::StrContains(id, "/") || absl::StrContains(id, "+") ||
      absl::StrContains(id, "#")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " '", id, "': a Sparkplug id must be non-empty, without '/', '+' or '#'"));
  }
  return absl::OkStatus();
}

}  // namespace matid::sparkplug

#endif  // MATID_SPARKPLUG_SPARKPLUG_ID_H_
