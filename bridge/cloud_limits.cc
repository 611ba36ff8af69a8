#include "bridge/cloud_limits.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace matid {

absl::Status CheckCloudTopic(absl::string_view topic) {
  if (topic.empty()) return absl::InvalidArgumentError("the cloud topic is empty");
  if (topic.size() > kCloudMaxTopicBytes) {
    return absl::InvalidArgumentError(absl::StrCat("cloud topic of ", topic.size(),
                                                   " bytes is over AWS IoT Core's limit of ",
                                                   kCloudMaxTopicBytes));
  }
  const auto slashes = std::count(topic.begin(), topic.end(), '/');
  if (slashes > kCloudMaxTopicSlashes) {
    return absl::InvalidArgumentError(absl::StrCat("cloud topic '", topic, "' has ", slashes,
                                                   " slashes; AWS IoT Core allows ",
                                                   kCloudMaxTopicSlashes));
  }
  if (topic.find_first_of(absl::string_view("+#\0", 3)) != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("cloud topic '", topic, "' holds a wildcard (+ or #) or a NUL"));
  }
  return absl::OkStatus();
}

absl::Status CheckCloudPayload(size_t bytes) {
  if (static_cast<int64_t>(bytes) > kCloudMaxPayloadBytes) {
    return absl::InvalidArgumentError(absl::StrCat("payload of ", bytes,
                                                   " bytes is over AWS IoT Core's limit of ",
                                                   kCloudMaxPayloadBytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace matid
