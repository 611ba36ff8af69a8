#include "common/result_message.h"

#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

using ::testing::HasSubstr;

ResultMessage Example() {
  ResultMessage m;
  m.camera_id = "line3-cam2";
  m.frame_seq = 42;
  m.message_id = MessageId(m.camera_id, "0a1b2c3d", m.frame_seq);
  m.timestamp = Rfc3339Millis(absl::FromUnixMillis(1'764'050'704'123));
  m.model_name = "fashion-mnist-resnet";
  m.model_version = "7";
  m.model_variant = "int8";
  m.model_sha256 = "0123456789ab";
  m.predictions = {{"Bag", 0.75}, {"Coat", 0.25}};
  m.top_label = "Bag";
  m.top_score = 0.75;
  m.needs_inspection = false;
  m.latency_ms = 12.5;
  return m;
}

TEST(ResultMessage, IdAndTimestampFormats) {
  EXPECT_EQ(MessageId("cam", "boot", 7), "cam-boot-7");
  EXPECT_EQ(Rfc3339Millis(absl::FromUnixMillis(1'764'050'704'123)), "2025-11-25T06:05:04.123Z");
}

TEST(ResultMessage, JsonRoundTrip) {
  const ResultMessage original = Example();
  auto parsed = ParseResultMessage(ToJson(original));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->message_id, "line3-cam2-0a1b2c3d-42");
  EXPECT_EQ(parsed->frame_seq, 42u);
  EXPECT_EQ(parsed->timestamp, original.timestamp);
  EXPECT_EQ(parsed->model_name, original.model_name);
  EXPECT_EQ(parsed->model_version, original.model_version);
  EXPECT_EQ(parsed->model_variant, original.model_variant);
  EXPECT_EQ(parsed->model_sha256, original.model_sha256);
  ASSERT_EQ(parsed->predictions.size(), 2u);
  EXPECT_EQ(parsed->predictions[1].label, "Coat");
  EXPECT_DOUBLE_EQ(parsed->top_score, 0.75);
  EXPECT_DOUBLE_EQ(parsed->latency_ms, 12.5);
}

TEST(ResultMessage, APlcTriggerRoundTripsAndIsLeftOutWhenAbsent) {
  EXPECT_EQ(ToJson(Example()).find("trigger"), std::string::npos);
  ResultMessage triggered = Example();
  triggered.trigger = ResultMessage::Trigger{4'000'000'000u, 65535, 2};
  auto parsed = ParseResultMessage(ToJson(triggered));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_TRUE(parsed->trigger.has_value());
  EXPECT_EQ(parsed->trigger->part_id, 4'000'000'000u);
  EXPECT_EQ(parsed->trigger->seq, 65535);
  EXPECT_EQ(parsed->trigger->recipe, 2);

  nlohmann::json broken = nlohmann::json::parse(ToJson(triggered));
  broken["trigger"]["seq"] = 70000;
  auto refused = ParseResultMessage(broken.dump());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("trigger"));
}

struct Broken {
  std::string json;
  std::string says;
};

class ResultMessageRefuses : public ::testing::TestWithParam<Broken> {};

TEST_P(ResultMessageRefuses, WithTheReason) {
  auto parsed = ParseResultMessage(GetParam().json);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(GetParam().says));
}

std::string Without(const std::string& field) {
  nlohmann::json json = nlohmann::json::parse(ToJson(Example()));
  json.erase(field);
  return json.dump();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ResultMessageRefuses,
    ::testing::Values(
        Broken{"{not json", "not valid JSON"}, Broken{"[1, 2]", "not a JSON object"},
        Broken{Without("message_id"), "message_id must be a string"},
        Broken{Without("camera_id"), "camera_id must be a string"},
        Broken{Without("top_score"), "top_score must be a number"},
        Broken{R"({"message_id": "", "timestamp": "t", "camera_id": "c", "top_label": "x"})",
               "message_id is empty"},
        Broken{R"({"message_id": "m", "timestamp": "t", "camera_id": "c", "top_label": "x",
                                 "frame_seq": -1})",
               "frame_seq"}));

TEST(ResultMessage, ScoreOutsideZeroToOneIsRefused) {
  ResultMessage m = Example();
  m.top_score = 1.5;
  EXPECT_THAT(std::string(ParseResultMessage(ToJson(m)).status().message()),
              HasSubstr("top_score must be in [0, 1]"));
}

// Found by fuzz/result_message_fuzzer: prediction scores were not checked.
TEST(ResultMessage, PredictionScoreOutsideZeroToOneIsRefused) {
  ResultMessage m = Example();
  m.predictions[1].score = 1.9;
  EXPECT_THAT(std::string(ParseResultMessage(ToJson(m)).status().message()),
              HasSubstr("each prediction score must be in [0, 1]"));
}

TEST(ResultMessage, NegativeLatencyIsRefused) {
  ResultMessage m = Example();
  m.latency_ms = -2;
  EXPECT_THAT(std::string(ParseResultMessage(ToJson(m)).status().message()),
              HasSubstr("latency_ms must be a finite number >= 0"));
}

}  // namespace
}  // namespace matid
