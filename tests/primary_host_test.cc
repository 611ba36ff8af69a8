// PrimaryHost's STATE rules: online/offline transitions, stale STATEs
// ignored, a reconnect waits for the STATE again, bad payloads and ids.
#include "sparkplug/primary_host.h"

#include <gtest/gtest.h>

namespace matid::sparkplug {
namespace {

TEST(PrimaryHostTest, FollowsOnlineAndOffline) {
  PrimaryHost host = *PrimaryHost::Create("scada");
  EXPECT_EQ(host.StateTopic(), "spBv1.0/STATE/scada");
  EXPECT_FALSE(host.online());
  EXPECT_EQ(*host.Apply(R"({"online": true, "timestamp": 100})"), HostChange::kOnline);
  EXPECT_TRUE(host.online());
  EXPECT_EQ(*host.Apply(R"({"online": true, "timestamp": 101})"), HostChange::kNone);
  EXPECT_EQ(*host.Apply(R"({"online": false, "timestamp": 200})"), HostChange::kOffline);
  EXPECT_FALSE(host.online());
}

TEST(PrimaryHostTest, IgnoresAStateOlderThanTheLast) {
  PrimaryHost host = *PrimaryHost::Create("scada");
  ASSERT_EQ(*host.Apply(R"({"online": true, "timestamp": 500})"), HostChange::kOnline);
  EXPECT_EQ(*host.Apply(R"({"online": false, "timestamp": 499})"), HostChange::kNone);
  EXPECT_TRUE(host.online());
}

TEST(PrimaryHostTest, AReconnectWaitsForTheStateAgain) {
  PrimaryHost host = *PrimaryHost::Create("scada");
  ASSERT_EQ(*host.Apply(R"({"online": true, "timestamp": 500})"), HostChange::kOnline);
  host.Reconnected();
  EXPECT_FALSE(host.online());
  // The broker's retained STATE comes again with the same timestamp.
  EXPECT_EQ(*host.Apply(R"({"online": true, "timestamp": 500})"), HostChange::kOnline);
}

TEST(PrimaryHostTest, RefusesWhatIsNotAState) {
  PrimaryHost host = *PrimaryHost::Create("scada");
  for (const char* payload : {"ONLINE", R"({"online": 1, "timestamp": 5})", R"({"online": true})",
                              R"({"online": true, "timestamp": -1})"}) {
    EXPECT_FALSE(host.Apply(payload).ok()) << payload;
  }
  EXPECT_FALSE(host.online());
}

TEST(PrimaryHostTest, RefusesIdsATopicCannotHold) {
  for (const char* id : {"", "a/b", "a+", "#"}) {
    const auto host = PrimaryHost::Create(id);
    ASSERT_FALSE(host.ok()) << id;
    EXPECT_NE(host.status().message().find("--primary_host_id"), std::string::npos);
  }
}

}  // namespace
}  // namespace matid::sparkplug
