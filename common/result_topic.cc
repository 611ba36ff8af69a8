#include "common/result_topic.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace matid {

namespace {
constexpr absl::string_view kPlaceholder = "{camera_id}";
}  // namespace

absl::Status ValidateResultTopicTemplate(absl::string_view topic_template) {
  const std::vector<absl::string_view> levels = absl::StrSplit(topic_template, '/');
  int placeholders = 0;
  for (absl::string_view level : levels) {
    if (level == kPlaceholder) {
      ++placeholders;
    } else if (absl::StrContains(level, kPlaceholder) || absl::StrContains(level, "+") ||
               absl::StrContains(level, "#")) {
      placeholders = -1;
      break;
    }
  }
  if (placeholders != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("topic template \"", topic_template,
                     "\" must hold {camera_id} once, as a whole level, and no + or # "
                     "(e.g. matid/{camera_id}/results)"));
  }
  return absl::OkStatus();
}

std::string ResultTopic(absl::string_view topic_template, absl::string_view camera_id) {
  return absl::StrReplaceAll(topic_template, {{kPlaceholder, camera_id}});
}

std::string ResultTopicFilter(absl::string_view topic_template) {
  return absl::StrReplaceAll(topic_template, {{kPlaceholder, "+"}});
}

bool TopicMatchesFilter(absl::string_view topic, absl::string_view filter) {
  const std::vector<absl::string_view> topic_levels = absl::StrSplit(topic, '/');
  const std::vector<absl::string_view> filter_levels = absl::StrSplit(filter, '/');
  for (size_t i = 0; i < filter_levels.size(); ++i) {
    if (filter_levels[i] == "#") return i + 1 == filter_levels.size();
    if (i >= topic_levels.size()) return false;
    if (filter_levels[i] != "+" && filter_levels[i] != topic_levels[i]) return false;
  }
  return topic_levels.size() == filter_levels.size();
}

absl::Status CheckResultTopic(absl::string_view topic, absl::string_view filter,
                              absl::string_view camera_id, absl::string_view id_name) {
  if (!TopicMatchesFilter(topic, filter)) {
    return absl::InvalidArgumentError(
        absl::StrCat("topic ", topic, " does not match the filter ", filter));
  }
  const std::vector<absl::string_view> filter_levels = absl::StrSplit(filter, '/');
  int plus_level = -1;
  for (size_t i = 0; i < filter_levels.size(); ++i) {
    if (filter_levels[i] != "+") continue;
    if (plus_level >= 0) return absl::OkStatus();  // several: no level names the camera
    plus_level = static_cast<int>(i);
  }
  if (plus_level < 0) return absl::OkStatus();
  const std::vector<absl::string_view> topic_levels = absl::StrSplit(topic, '/');
  if (topic_levels[plus_level] != camera_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("topic ", topic, " does not match ", id_name, " ", camera_id));
  }
  return absl::OkStatus();
}

}  // namespace matid
