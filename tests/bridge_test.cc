// The bridge's logic with a real spool and a fake cloud link (no broker).
#include "bridge/bridge.h"

#include <unistd.h>

#include <filesystem>
#include <future>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/event_message.h"
#include "common/result_message.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

using ::testing::HasSubstr;

// Records publishes; acknowledges them at once unless told otherwise.
class FakeCloud final : public CloudLink {
 public:
  bool connected() const override { return connected_.load(); }
  absl::StatusOr<int> Publish(const std::string& topic, absl::string_view payload) override {
    if (refuse_.load()) {
      ++refused_;
      return absl::UnavailableError("refused by the test");
    }
    int id;
    bool ack = ack_.load();
    {
      std::lock_guard<std::mutex> lock(mu_);
      id = ++next_id_;
      publishes_.emplace_back(topic, std::string(payload));
      // As AWS IoT Core answers a publish it refuses: never acknowledged.
      if (!never_ack_containing_.empty() && absl::StrContains(payload, never_ack_containing_)) {
        ack = false;
      }
      if (ack) acked_.emplace_back(payload);
    }
    if (ack && bridge_ != nullptr) bridge_->OnCloudAck(id);  // before Publish returns
    return id;
  }
  void DropUnacknowledged() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++dropped_unacknowledged_;
  }
  void NeverAcknowledgeContaining(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    never_ack_containing_ = text;
  }
  int dropped_unacknowledged() {
    std::lock_guard<std::mutex> lock(mu_);
    return dropped_unacknowledged_;
  }
  // Every message id in an acknowledged publish, in order.
  std::vector<std::string> acked_ids() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> ids;
    for (const std::string& payload : acked_) {
      for (absl::string_view line : absl::StrSplit(payload, '\n')) {
        ids.push_back(ParseResultMessage(line)->message_id);
      }
    }
    return ids;
  }
  std::vector<std::pair<std::string, std::string>> publishes() {
    std::lock_guard<std::mutex> lock(mu_);
    return publishes_;
  }
  // Every message id delivered in any publish, in order.
  std::vector<std::string> delivered_ids() {
    std::vector<std::string> ids;
    for (const auto& [topic, payload] : publishes()) {
      for (absl::string_view line : absl::StrSplit(payload, '\n')) {
        ids.push_back(ParseResultMessage(line)->message_id);
      }
    }
    return ids;
  }

  std::atomic<bool> connected_{true};
  std::atomic<bool> ack_{true};
  std::atomic<bool> refuse_{false};  // every Publish fails, and is counted
  std::atomic<int> refused_{0};
  Bridge* bridge_ = nullptr;

 private:
  std::mutex mu_;
  int next_id_ = 0;
  std::vector<std::pair<std::string, std::string>> publishes_;
  std::vector<std::string> acked_;
  std::string never_ack_containing_;
  int dropped_unacknowledged_ = 0;
};

std::string Message(const std::string& camera, int seq, int padding = 0) {
  ResultMessage m;
  m.camera_id = camera;
  m.frame_seq = seq;
  m.message_id = MessageId(camera, "boot", seq);
  m.timestamp = Rfc3339Millis(absl::Now());
  m.model_name = "model";
  m.predictions = {{std::string(padding, 'p'), 0.5}};
  m.top_label = "x";
  m.top_score = 0.5;
  return ToJson(m);
}

std::string Event(const std::string& box, int64_t to_version) {
  EventMessage e;
  e.box_id = box;
  e.type = "promotion";
  e.model = "parts";
  e.from_version = to_version - 1;
  e.to_version = to_version;
  e.trigger = "policy";
  e.reason = "500 compared >= 500";
  e.figures = {{"compared", 500}};
  StampEvent(absl::FromUnixMillis(1764140000000 + to_version), e);
  return ToJson(e);
}

template <typename Predicate>
bool Eventually(Predicate predicate, absl::Duration limit = absl::Seconds(10)) {
  const absl::Time give_up = absl::Now() + limit;
  while (absl::Now() < give_up) {
    if (predicate()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return predicate();
}

class BridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // This process's own file: two runs at once once shared one spool, and
    // each saw the other's messages (bridge_test failed when run twice at once).
    const auto path =
        std::filesystem::path(::testing::TempDir()) /
        (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
         std::to_string(getpid()) + ".db");
    std::filesystem::remove(path);
    std::filesystem::remove(path.string() + "-wal");
    spool_path_ = path.string();
    spool_ = *Spool::Open({spool_path_, 1 << 20, absl::Hours(1), false});
  }
  void StartBridge(BridgeOptions options = {}) {
    options.ack_timeout = absl::Milliseconds(300);
    options.housekeeping_interval = absl::Milliseconds(50);
    options.max_publishes_per_second = 1000;
    auto bridge = Bridge::Create(options, spool_.get(), &cloud_, &registry_);
    ASSERT_TRUE(bridge.ok()) << bridge.status();
    bridge_ = *std::move(bridge);
    cloud_.bridge_ = bridge_.get();
  }
  void TearDown() override {
    if (bridge_) bridge_->Stop();
    bridge_.reset();
    const std::string path = spool_path_;
    spool_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }

  prometheus::Registry registry_;
  std::string spool_path_;
  std::unique_ptr<Spool> spool_;
  FakeCloud cloud_;
  std::unique_ptr<Bridge> bridge_;
};

TEST_F(BridgeTest, ForwardsEveryMessageAndEmptiesTheSpool) {
  StartBridge();
  for (int seq = 0; seq < 20; ++seq) {
    ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", seq)).ok());
  }
  ASSERT_TRUE(Eventually([&] { return cloud_.delivered_ids().size() == 20; }));
  ASSERT_TRUE(Eventually([&] { return spool_->Stats()->messages == 0; }));
  std::vector<std::string> ids = cloud_.delivered_ids();
  for (int seq = 0; seq < 20; ++seq) EXPECT_EQ(ids[seq], MessageId("cam1", "boot", seq));
  EXPECT_EQ(cloud_.publishes().front().first, "matid/cam1/results");
}

TEST_F(BridgeTest, BatchesABacklogUnderTheByteCapAndPerTopic) {
  cloud_.connected_ = false;  // build a backlog first
  BridgeOptions options;
  options.batch_max_messages = 50;
  options.batch_max_bytes = 4096;
  options.cloud_topic_template = "dt/plant/{camera_id}";
  StartBridge(options);
  for (int seq = 0; seq < 30; ++seq) {
    ASSERT_TRUE(bridge_->OnLocalMessage("matid/a/results", Message("a", seq, 300)).ok());
  }
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/b/results", Message("b", 0)).ok());
  cloud_.connected_ = true;
  bridge_->OnCloudConnection(true);
  ASSERT_TRUE(Eventually([&] { return cloud_.delivered_ids().size() == 31; }));
  const auto publishes = cloud_.publishes();
  EXPECT_GT(publishes.size(), 2u);   // batched...
  EXPECT_LT(publishes.size(), 31u);  // ...but not one publish per message
  for (const auto& [topic, payload] : publishes) {
    EXPECT_LE(payload.size(), 4096u);
    EXPECT_THAT(topic, ::testing::AnyOf("dt/plant/a", "dt/plant/b"));
  }
  EXPECT_EQ(publishes.back().first, "dt/plant/b");
}

TEST_F(BridgeTest, KeepsMessagesWhileTheCloudIsAwayAndSendsThemAfter) {
  cloud_.connected_ = false;
  StartBridge();
  for (int seq = 0; seq < 5; ++seq) {
    ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", seq)).ok());
  }
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_TRUE(cloud_.publishes().empty());
  EXPECT_EQ(spool_->Stats()->messages, 5);
  cloud_.connected_ = true;
  bridge_->OnCloudConnection(true);
  ASSERT_TRUE(Eventually([&] { return cloud_.delivered_ids().size() == 5; }));
}

TEST_F(BridgeTest, UnacknowledgedPublishIsSentAgainAndStaysSpooledUntilAcked) {
  cloud_.ack_ = false;
  StartBridge();
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", 1)).ok());
  ASSERT_TRUE(Eventually([&] { return cloud_.publishes().size() >= 2; }));  // resent after timeout
  EXPECT_EQ(spool_->Stats()->messages, 1);  // never removed without an ack
  cloud_.ack_ = true;
  ASSERT_TRUE(Eventually([&] { return spool_->Stats()->messages == 0; }));
  for (const std::string& id : cloud_.delivered_ids()) EXPECT_EQ(id, "cam1-boot-1");  // same id
}

TEST_F(BridgeTest, AMessageTheCloudNeverAcknowledgesHoldsBackNoneBehindIt) {
  cloud_.connected_ = false;  // a backlog: the refused message is first in a batch
  StartBridge();
  for (int seq = 0; seq < 10; ++seq) {
    ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", seq)).ok());
  }
  cloud_.NeverAcknowledgeContaining(MessageId("cam1", "boot", 0));
  cloud_.connected_ = true;
  ASSERT_TRUE(Eventually([&] { return cloud_.acked_ids().size() == 9; }))
      << cloud_.acked_ids().size() << " acknowledged";
  std::vector<std::string> expected;
  for (int seq = 1; seq < 10; ++seq) expected.push_back(MessageId("cam1", "boot", seq));
  EXPECT_EQ(cloud_.acked_ids(), expected);
  // Two failed publishes (the batch, then the message alone), each dropped
  // from the MQTT library's own resend queue; the message is kept.
  EXPECT_GE(cloud_.dropped_unacknowledged(), 2);
  auto left = spool_->Oldest(10, 1 << 20);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ(left->front().message_id, MessageId("cam1", "boot", 0));
}

TEST_F(BridgeTest, MalformedMessagesGoToDeadLettersNotToTheCloud) {
  StartBridge();
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", "{broken").ok());
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/other/results", Message("cam1", 1)).ok());
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", 2)).ok());
  ASSERT_TRUE(Eventually([&] { return cloud_.delivered_ids().size() == 1; }));
  auto letters = *spool_->DeadLetters(10);
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_THAT(letters[0].first, HasSubstr("not valid JSON"));
  EXPECT_THAT(letters[1].first, HasSubstr("does not match camera_id"));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(cloud_.delivered_ids().size(), 1u);
}

// What AWS IoT Core would refuse (a payload over 128 KB, a topic over 256
// bytes) is a dead letter when it arrives: it never blocks the messages
// behind it.
TEST_F(BridgeTest, MessagesTheCloudWouldRefuseAreDeadLetteredAndTheNextIsDelivered) {
  StartBridge();
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", 1, 200 * 1024)).ok());
  const std::string long_camera(300, 'c');
  ASSERT_TRUE(
      bridge_->OnLocalMessage("matid/" + long_camera + "/results", Message(long_camera, 1)).ok());
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", 2)).ok());
  ASSERT_TRUE(Eventually([&] { return cloud_.delivered_ids().size() == 1; }));
  EXPECT_EQ(cloud_.delivered_ids()[0], "cam1-boot-2");
  auto letters = *spool_->DeadLetters(10);
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_THAT(letters[0].first, HasSubstr("over AWS IoT Core's limit of 131072 bytes"));
  EXPECT_THAT(letters[1].first, HasSubstr("bytes is over AWS IoT Core's limit of 256"));
  EXPECT_EQ(spool_->Stats()->messages, 0);
}

// Model events from matid-server go to the cloud on their own topic; a
// malformed one, or one on another box's topic, is a dead letter.
TEST_F(BridgeTest, ModelEventsAreForwardedOnTheirOwnTopic) {
  StartBridge();
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/box-1/events", Event("box-1", 2)).ok());
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/box-2/events", Event("box-1", 3)).ok());
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/box-1/events", R"({"type": "promotion"})").ok());
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", 1)).ok());
  ASSERT_TRUE(Eventually([&] { return cloud_.publishes().size() == 2; }));
  ASSERT_TRUE(Eventually([&] { return spool_->Stats()->messages == 0; }));
  const auto publishes = cloud_.publishes();
  EXPECT_EQ(publishes[0].first, "matid/box-1/events");
  const auto event = ParseEventMessage(publishes[0].second);
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_EQ(event->to_version, 2);
  EXPECT_EQ(publishes[1].first, "matid/cam1/results");
  auto letters = *spool_->DeadLetters(10);
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_THAT(letters[0].first, HasSubstr("does not match box_id box-1"));
  EXPECT_THAT(letters[1].first, HasSubstr("event message: message_id must be a string"));
}

// A plant that publishes on its own topic layout: the bridge checks topics
// against its --local_topic, not against the default layout.
TEST_F(BridgeTest, NonDefaultLocalTopicFilterIsHonoured) {
  BridgeOptions options;
  options.local_topic_filter = "plant/line1/+/classified";
  StartBridge(options);
  ASSERT_TRUE(bridge_->OnLocalMessage("plant/line1/cam1/classified", Message("cam1", 1)).ok());
  ASSERT_TRUE(bridge_->OnLocalMessage("plant/line1/cam2/classified", Message("cam1", 2)).ok());
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", 3)).ok());
  ASSERT_TRUE(Eventually([&] { return cloud_.delivered_ids().size() == 1; }));
  EXPECT_EQ(cloud_.delivered_ids()[0], "cam1-boot-1");
  auto letters = *spool_->DeadLetters(10);
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_THAT(letters[0].first, HasSubstr("does not match camera_id cam1"));
  EXPECT_THAT(letters[1].first, HasSubstr("does not match the filter"));
}

TEST_F(BridgeTest, DuplicateFromTheLocalBrokerIsForwardedOnce) {
  cloud_.connected_ = false;
  StartBridge();
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", 1)).ok());
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", 1)).ok());
  cloud_.connected_ = true;
  bridge_->OnCloudConnection(true);
  ASSERT_TRUE(Eventually([&] { return spool_->Stats()->messages == 0; }));
  EXPECT_EQ(cloud_.delivered_ids().size(), 1u);
}

// A bridge waiting out a long retry backoff (the cloud refuses publishes)
// stops at once instead of sleeping the backoff to its end.
TEST_F(BridgeTest, StopReturnsPromptlyDuringARetryBackoff) {
  cloud_.refuse_ = true;
  BridgeOptions options;
  options.retry_backoff_initial = absl::Seconds(60);
  options.retry_backoff_max = absl::Seconds(60);
  StartBridge(options);
  ASSERT_TRUE(bridge_->OnLocalMessage("matid/cam1/results", Message("cam1", 1)).ok());
  ASSERT_TRUE(Eventually([&] { return cloud_.refused_.load() >= 1; }));
  // Now in a backoff of up to 60 s (full jitter: now and then a short one
  // and a second attempt, after which the next backoff is up to 60 s too).
  absl::SleepFor(absl::Milliseconds(50));
  const int refused_before_stop = cloud_.refused_.load();
  auto stopped = std::async(std::launch::async, [&] { bridge_->Stop(); });
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(2)), std::future_status::ready);
  stopped.wait();
  // At most an attempt already under way when Stop() came; none after.
  EXPECT_LE(cloud_.refused_.load(), refused_before_stop + 1);
}

TEST_F(BridgeTest, InvalidOptionsAreRefused) {
  BridgeOptions options;
  options.batch_max_bytes = 200 * 1024;
  EXPECT_EQ(Bridge::Create(options, spool_.get(), &cloud_, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = BridgeOptions();
  options.cloud_topic_template = "a/b/c/d/e/f/g/{camera_id}/results";  // 8 slashes
  absl::Status refused = Bridge::Create(options, spool_.get(), &cloud_, nullptr).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("--cloud_topic_template: cloud topic"));
  EXPECT_THAT(refused.message(), HasSubstr("AWS IoT Core allows 7"));
}

}  // namespace
}  // namespace matid
