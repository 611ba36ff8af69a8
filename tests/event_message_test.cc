// The model lifecycle event: what ToJson writes is what ParseEventMessage
// reads back, its ids and times are stamped as the schema says, and a
// malformed event is refused with the reason.
#include "common/event_message.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

using ::testing::HasSubstr;

EventMessage Promotion() {
  EventMessage e;
  e.box_id = "edge-1";
  e.type = "promotion";
  e.model = "parts";
  e.from_version = 3;
  e.to_version = 4;
  e.trigger = "policy";
  e.reason = "612 compared >= 500";
  e.figures = {{"compared", 612}, {"agreement", 0.9912}};
  StampEvent(absl::FromUnixMillis(1764140400123), e);
  return e;
}

TEST(EventMessage, StampsIdAndTimeAndSurvivesARoundTrip) {
  const EventMessage e = Promotion();
  EXPECT_EQ(e.message_id, "edge-1-parts-promotion-1764140400123");
  EXPECT_EQ(e.timestamp, "2025-11-26T07:00:00.123Z");
  const auto parsed = ParseEventMessage(ToJson(e));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(ToJson(*parsed), ToJson(e));
  EXPECT_EQ(parsed->figures.at("agreement"), 0.9912);
}

TEST(EventMessage, MalformedEventsAreRefusedWithTheReason) {
  auto refused = [](const std::string& json) {
    return std::string(ParseEventMessage(json).status().message());
  };
  EXPECT_THAT(refused("{"), HasSubstr("not valid JSON"));
  EXPECT_THAT(refused("[1]"), HasSubstr("not a JSON object"));
  std::string json = ToJson(Promotion());
  auto with = [&](const std::string& from, const std::string& to) {
    std::string changed = json;
    const size_t at = changed.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return changed.replace(at, from.size(), to);
  };
  EXPECT_THAT(refused(with("\"type\":\"promotion\"", "\"type\":\"deploy\"")),
              HasSubstr("type is \"deploy\""));
  EXPECT_THAT(refused(with("\"trigger\":\"policy\"", "\"trigger\":\"cron\"")),
              HasSubstr("trigger is \"cron\""));
  EXPECT_THAT(refused(with("\"to_version\":4", "\"to_version\":0")),
              HasSubstr("to_version must be a positive integer"));
  EXPECT_THAT(refused(with("\"box_id\":\"edge-1\"", "\"box_id\":\"\"")),
              HasSubstr("box_id is empty"));
  EXPECT_THAT(refused(with("\"compared\":612.0", "\"compared\":\"many\"")),
              HasSubstr("figure compared must be a finite number"));
}

}  // namespace
}  // namespace matid
