// Where result messages travel on MQTT, in one place for the camera (which
// publishes) and the bridge (which subscribes and checks): a topic template
// with a {camera_id} placeholder, the subscription filter made from it, and
// MQTT topic-filter matching. Pure functions, safe from any thread.
#ifndef MATID_COMMON_RESULT_TOPIC_H_
#define MATID_COMMON_RESULT_TOPIC_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace matid {

// The template every program uses unless told otherwise.
inline constexpr absl::string_view kDefaultResultTopicTemplate = "matid/{camera_id}/results";

// INVALID_ARGUMENT unless `topic_template` holds {camera_id} exactly once, as
// a whole topic level, and no MQTT wildcard.
absl::Status ValidateResultTopicTemplate(absl::string_view topic_template);

// The topic one camera publishes on.
std::string ResultTopic(absl::string_view topic_template, absl::string_view camera_id);

// The subscription filter for every camera: {camera_id} becomes "+".
std::string ResultTopicFilter(absl::string_view topic_template);

// MQTT matching: "+" is one level, a final "#" any number of levels.
bool TopicMatchesFilter(absl::string_view topic, absl::string_view filter);

// OK when `topic` matches `filter` and, where the filter has exactly one "+"
// level, that level is `camera_id` (a message may not speak for another
// camera; for model events the level is the box id, named `id_name`);
// INVALID_ARGUMENT saying which rule failed otherwise.
absl::Status CheckResultTopic(absl::string_view topic, absl::string_view filter,
                              absl::string_view camera_id, absl::string_view id_name = "camera_id");

}  // namespace matid

#endif  // MATID_COMMON_RESULT_TOPIC_H_
