#include "common/result_topic.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace matid {
namespace {

using ::testing::HasSubstr;

TEST(ResultTopic, DefaultTemplateGivesTheDocumentedTopicAndFilter) {
  EXPECT_EQ(ResultTopic(kDefaultResultTopicTemplate, "line1-cam1"), "matid/line1-cam1/results");
  EXPECT_EQ(ResultTopicFilter(kDefaultResultTopicTemplate), "matid/+/results");
}

TEST(ResultTopic, TemplateNeedsThePlaceholderOnceAsAWholeLevel) {
  EXPECT_TRUE(ValidateResultTopicTemplate("plant/line1/{camera_id}/classified").ok());
  for (const char* bad : {"matid/results", "matid/{camera_id}/{camera_id}", "matid/cam-{camera_id}",
                          "matid/+/{camera_id}", "matid/{camera_id}/#"}) {
    EXPECT_EQ(ValidateResultTopicTemplate(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ResultTopic, FilterMatchingFollowsMqtt) {
  EXPECT_TRUE(TopicMatchesFilter("matid/cam1/results", "matid/+/results"));
  EXPECT_FALSE(TopicMatchesFilter("matid/cam1/other", "matid/+/results"));
  EXPECT_FALSE(TopicMatchesFilter("matid/a/b/results", "matid/+/results"));
  EXPECT_TRUE(TopicMatchesFilter("plant/l1/cam1/x", "plant/#"));
  EXPECT_TRUE(TopicMatchesFilter("plant", "plant/#"));
  EXPECT_FALSE(TopicMatchesFilter("factory/l1", "plant/#"));
  EXPECT_FALSE(TopicMatchesFilter("matid/cam1", "matid/cam1/results"));
}

TEST(ResultTopic, CheckNamesTheRuleABadTopicBreaks) {
  EXPECT_TRUE(CheckResultTopic("plant/l1/cam7/classified", "plant/l1/+/classified", "cam7").ok());
  absl::Status other =
      CheckResultTopic("plant/l1/cam8/classified", "plant/l1/+/classified", "cam7");
  EXPECT_THAT(other.message(), HasSubstr("does not match camera_id cam7"));
  absl::Status outside = CheckResultTopic("matid/cam7/results", "plant/l1/+/classified", "cam7");
  EXPECT_THAT(outside.message(), HasSubstr("does not match the filter"));
  // "#" or two "+": no level names the camera; matching is enough.
  EXPECT_TRUE(CheckResultTopic("plant/l1/cam7/x", "plant/#", "cam7").ok());
  EXPECT_TRUE(CheckResultTopic("plant/l1/cam7", "plant/+/+", "other").ok());
}

}  // namespace
}  // namespace matid
