// EdgeNodeSession's Sparkplug rules with a stepped clock: bdSeq per
// connection, seq over births and data, DBIRTH before DDATA, historical
// flags, camera timeouts, the camera limit, rebirth requests.
#include "sparkplug/edge_node_session.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

namespace matid::sparkplug {
namespace {

using sparkplug_b::Payload;

const absl::Time kStart = absl::FromUnixMillis(1796623200000);

Payload Decode(const Outgoing& message) {
  Payload payload;
  EXPECT_TRUE(payload.ParseFromString(message.payload));
  return payload;
}

ResultMessage Result(const std::string& camera, uint64_t seq) {
  ResultMessage result;
  result.message_id = camera + "-b-" + std::to_string(seq);
  result.timestamp = "2026-12-07T06:00:00.250Z";
  result.camera_id = camera;
  result.frame_seq = seq;
  result.top_label = "Bag";
  result.top_score = 0.5;
  return result;
}

EdgeNodeSession NewSession(absl::Duration device_timeout = absl::Seconds(60),
                           int max_cameras = 256) {
  EdgeNodeOptions options;
  options.group_id = "g";
  options.edge_node_id = "n";
  options.device_timeout = device_timeout;
  options.max_cameras = max_cameras;
  return *EdgeNodeSession::Create(options);
}

uint64_t BdSeq(const Payload& payload) {
  for (const auto& metric : payload.metrics()) {
    if (metric.name() == kBdSeqMetric) return metric.long_value();
  }
  ADD_FAILURE() << "no bdSeq";
  return 0;
}

TEST(EdgeNodeSessionTest, RefusesIdsSparkplugTopicsCannotHold) {
  EdgeNodeOptions options;
  options.edge_node_id = "a/b";
  EXPECT_NE(EdgeNodeSession::Create(options).status().message().find("--sparkplug_node"),
            std::string::npos);
  options.edge_node_id = "";
  EXPECT_FALSE(EdgeNodeSession::Create(options).ok());
  options.edge_node_id = "n";
  options.group_id = "#";
  EXPECT_NE(EdgeNodeSession::Create(options).status().message().find("--sparkplug_group"),
            std::string::npos);
}

TEST(EdgeNodeSessionTest, EachConnectionHasTheNextBdSeqInWillAndBirth) {
  EdgeNodeSession session = NewSession();
  for (uint64_t expected : {0, 1, 2}) {
    const Outgoing will = session.NextConnection(kStart);
    EXPECT_EQ(will.topic, "spBv1.0/g/NDEATH/n");
    const Payload death = Decode(will);
    EXPECT_FALSE(death.has_seq());
    EXPECT_EQ(BdSeq(death), expected);
    const Payload birth = Decode(session.Birth(NodeStatus(), kStart)[0]);
    EXPECT_EQ(BdSeq(birth), expected);
    EXPECT_EQ(birth.seq(), 0u);
    session.Disconnected();
  }
}

TEST(EdgeNodeSessionTest, BdSeqWrapsAfter255) {
  EdgeNodeSession session = NewSession();
  for (int i = 0; i < 256; ++i) session.NextConnection(kStart);
  EXPECT_EQ(BdSeq(Decode(session.NextConnection(kStart))), 0u);
}

TEST(EdgeNodeSessionTest, BirthDeclaresRebirthWithoutAliasAndTheModel) {
  EdgeNodeSession session = NewSession();
  session.NextConnection(kStart);
  NodeStatus status;
  status.model_name = "parts";
  status.server_state = "SERVING";
  const Payload birth = Decode(session.Birth(status, kStart)[0]);
  std::map<std::string, Payload::Metric> metrics;
  for (const auto& metric : birth.metrics()) metrics[metric.name()] = metric;
  ASSERT_TRUE(metrics.count(kRebirthMetric));
  EXPECT_FALSE(metrics[kRebirthMetric].has_alias());
  EXPECT_FALSE(metrics[kRebirthMetric].boolean_value());
  EXPECT_EQ(metrics["Model/Name"].string_value(), "parts");
  EXPECT_EQ(metrics["Server/State"].string_value(), "SERVING");
  for (const auto& metric : birth.metrics()) {
    EXPECT_EQ(metric.timestamp(), 1796623200000u) << metric.name();
  }
}

TEST(EdgeNodeSessionTest, FirstResultOfACameraBringsItsBirthThenData) {
  EdgeNodeSession session = NewSession();
  session.NextConnection(kStart);
  session.Birth(NodeStatus(), kStart);
  auto out = session.Result(Result("cam", 1), false, kStart);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].topic, "spBv1.0/g/DBIRTH/n/cam");
  EXPECT_EQ((*out)[1].topic, "spBv1.0/g/DDATA/n/cam");
  const Payload dbirth = Decode((*out)[0]);
  EXPECT_EQ(dbirth.seq(), 1u);
  EXPECT_TRUE(dbirth.metrics(0).is_null()) << "born before its first value";
  const Payload ddata = Decode((*out)[1]);
  EXPECT_EQ(ddata.seq(), 2u);
  EXPECT_FALSE(ddata.metrics(0).has_name());
  EXPECT_EQ(ddata.metrics(0).alias(), dbirth.metrics(0).alias());
  EXPECT_EQ(ddata.metrics(0).string_value(), "Bag");
  EXPECT_EQ(ddata.metrics(0).timestamp(), 1796623200250u);
  EXPECT_FALSE(ddata.metrics(0).is_historical());
  auto again = session.Result(Result("cam", 2), true, kStart);
  ASSERT_EQ(again->size(), 1u);
  EXPECT_TRUE(Decode((*again)[0]).metrics(0).is_historical());
}

TEST(EdgeNodeSessionTest, SeqWrapsAfter255AndRestartsAtBirth) {
  EdgeNodeSession session = NewSession();
  session.NextConnection(kStart);
  session.Birth(NodeStatus(), kStart);
  uint64_t last = 0;
  for (int i = 0; i < 300; ++i) {
    auto out = session.Result(Result("cam", i), false, kStart);
    for (const Outgoing& message : *out) {
      const uint64_t seq = Decode(message).seq();
      EXPECT_EQ(seq, (last + 1) % 256);
      last = seq;
    }
  }
  auto births = session.Birth(NodeStatus(), kStart);
  ASSERT_EQ(births.size(), 2u) << "NBIRTH and the live camera's DBIRTH";
  EXPECT_EQ(Decode(births[0]).seq(), 0u);
  EXPECT_EQ(Decode(births[1]).seq(), 1u);
  EXPECT_EQ(Decode(births[1]).metrics(0).string_value(), "Bag") << "the last values";
}

TEST(EdgeNodeSessionTest, SilentCameraGetsADeathThenANewBirth) {
  EdgeNodeSession session = NewSession(absl::Seconds(10));
  session.NextConnection(kStart);
  session.Birth(NodeStatus(), kStart);
  ASSERT_TRUE(session.Result(Result("cam", 1), false, kStart).ok());
  EXPECT_TRUE(session.ExpireDevices(kStart + absl::Seconds(9)).empty());
  auto deaths = session.ExpireDevices(kStart + absl::Seconds(10));
  ASSERT_EQ(deaths.size(), 1u);
  EXPECT_EQ(deaths[0].topic, "spBv1.0/g/DDEATH/n/cam");
  EXPECT_EQ(Decode(deaths[0]).seq(), 3u);
  EXPECT_TRUE(session.ExpireDevices(kStart + absl::Seconds(20)).empty()) << "once";
  EXPECT_TRUE(session.LiveDevices().empty());
  auto out = session.Result(Result("cam", 2), false, kStart + absl::Seconds(21));
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].topic, "spBv1.0/g/DBIRTH/n/cam");
}

TEST(EdgeNodeSessionTest, CamerasBeyondTheLimitAreRefusedByName) {
  EdgeNodeSession session = NewSession(absl::Seconds(60), 2);
  session.NextConnection(kStart);
  session.Birth(NodeStatus(), kStart);
  EXPECT_TRUE(session.Result(Result("a", 1), false, kStart).ok());
  EXPECT_TRUE(session.Result(Result("b", 1), false, kStart).ok());
  auto refused = session.Result(Result("c", 1), false, kStart);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("--max_cameras"), std::string::npos);
  EXPECT_TRUE(session.Result(Result("a", 2), false, kStart).ok());
}

TEST(EdgeNodeSessionTest, AliasesAreUniqueAcrossCameras) {
  EdgeNodeSession session = NewSession();
  session.NextConnection(kStart);
  std::set<uint64_t> aliases;
  const Payload birth = Decode(session.Birth(NodeStatus(), kStart)[0]);
  for (const auto& metric : birth.metrics()) {
    if (metric.has_alias()) {
      EXPECT_TRUE(aliases.insert(metric.alias()).second);
    }
  }
  for (const char* camera : {"a", "b", "c"}) {
    auto out = session.Result(Result(camera, 1), false, kStart);
    const Payload dbirth = Decode((*out)[0]);
    for (const auto& metric : dbirth.metrics()) {
      EXPECT_TRUE(aliases.insert(metric.alias()).second) << camera << " " << metric.name();
    }
  }
}

TEST(EdgeNodeSessionTest, NodeDataOnlyWhenTheStatusChanges) {
  EdgeNodeSession session = NewSession();
  session.NextConnection(kStart);
  NodeStatus status;
  status.server_state = "SERVING";
  session.Birth(status, kStart);
  EXPECT_TRUE(session.Status(status, kStart).empty());
  status.server_state = "UNREACHABLE";
  auto out = session.Status(status, kStart);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].topic, "spBv1.0/g/NDATA/n");
  const Payload ndata = Decode(out[0]);
  ASSERT_EQ(ndata.metrics_size(), 1);
  EXPECT_EQ(ndata.metrics(0).string_value(), "UNREACHABLE");
}

TEST(EdgeNodeSessionTest, RecognisesRebirthRequests) {
  Payload ncmd;
  auto* metric = ncmd.add_metrics();
  metric->set_name(kRebirthMetric);
  metric->set_boolean_value(true);
  EXPECT_TRUE(*EdgeNodeSession::IsRebirthRequest(ncmd.SerializeAsString()));
  metric->set_boolean_value(false);
  EXPECT_FALSE(*EdgeNodeSession::IsRebirthRequest(ncmd.SerializeAsString()));
  EXPECT_FALSE(EdgeNodeSession::IsRebirthRequest("\xff\xff\xff").ok());
}

}  // namespace
}  // namespace matid::sparkplug
