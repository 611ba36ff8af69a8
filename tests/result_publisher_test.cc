// ResultPublisher against a fake link: what it sends, in which order, what
// it keeps while the broker is away, and what it drops when the outbox is
// full. No broker involved (tests/edge_pipeline_test.py covers real MQTT).
#include "client/camera/result_publisher.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"

namespace matid {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A link the test switches up and down; every accepted message is recorded
// and acknowledged when the test says, or with auto_ack by the link's own
// thread, as libmosquitto's network thread does.
class FakeLink final : public PublishLink {
 public:
  explicit FakeLink(Callbacks callbacks)
      : callbacks_(std::move(callbacks)), acker_([this] { AckLoop(); }) {}
  ~FakeLink() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    changed_.notify_all();
    acker_.join();
  }

  absl::StatusOr<int> Publish(const std::string& topic, absl::string_view payload) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!up_) return absl::UnavailableError("fake link down");
    const int id = next_id_++;
    sent_.push_back({topic, ParseResultMessage(payload)->frame_seq});
    if (auto_ack_) {
      to_ack_.push_back(id);
      changed_.notify_all();
    }
    return id;
  }

  void SetUp(bool up) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      up_ = up;
    }
    callbacks_.on_connection(up, up ? "" : "test");
  }
  void set_auto_ack(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    auto_ack_ = on;
  }
  void AckAll() {
    int last;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last = next_id_;
    }
    for (int id = 1; id < last; ++id) callbacks_.on_acked(id);
  }
  // (topic, frame_seq) of every message accepted, in order.
  std::vector<std::pair<std::string, uint64_t>> sent() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }

 private:
  void AckLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      changed_.wait(lock, [this] { return stopping_ || !to_ack_.empty(); });
      if (stopping_) return;
      const int id = to_ack_.front();
      to_ack_.pop_front();
      lock.unlock();
      callbacks_.on_acked(id);
      lock.lock();
    }
  }

  const Callbacks callbacks_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool up_ = false;
  bool auto_ack_ = false;
  bool stopping_ = false;
  int next_id_ = 1;
  std::deque<int> to_ack_;
  std::vector<std::pair<std::string, uint64_t>> sent_;
  std::thread acker_;  // last: started once the rest is ready
};

struct Fixture {
  prometheus::Registry registry;
  FakeLink* link = nullptr;  // owned by the publisher
  std::unique_ptr<ResultPublisher> publisher;

  explicit Fixture(ResultPublisherOptions options = {}) {
    auto created = ResultPublisher::Create(
        options,
        [this](PublishLink::Callbacks callbacks) -> absl::StatusOr<std::unique_ptr<PublishLink>> {
          auto fake = std::make_unique<FakeLink>(std::move(callbacks));
          link = fake.get();
          return fake;
        },
        &registry);
    EXPECT_TRUE(created.ok()) << created.status();
    publisher = *std::move(created);
  }

  double Metric(const std::string& name) const {
    for (const auto& family : registry.Collect()) {
      if (family.name != name) continue;
      const auto& metric = family.metric.at(0);
      return family.type == prometheus::MetricType::Gauge ? metric.gauge.value
                                                          : metric.counter.value;
    }
    ADD_FAILURE() << "no metric " << name;
    return -1;
  }
};

ResultMessage Message(uint64_t seq, const std::string& camera = "cam-1") {
  ResultMessage message;
  message.camera_id = camera;
  message.frame_seq = seq;
  message.message_id = MessageId(camera, "boot", seq);
  message.timestamp = "2026-11-25T06:05:04.123Z";
  message.model_name = "m";
  message.model_version = "1";
  message.top_label = "bolt";
  message.top_score = 0.9;
  message.predictions = {{"bolt", 0.9}};
  return message;
}

TEST(ResultPublisher, SendsAtOnceWhileTheLinkIsUpAndDrainsOnAcknowledgement) {
  Fixture f;
  f.link->SetUp(true);
  f.publisher->Publish(Message(1));
  f.publisher->Publish(Message(2, "cam-2"));
  EXPECT_THAT(f.link->sent(),
              ElementsAre(std::pair<std::string, uint64_t>{"matid/cam-1/results", 1},
                          std::pair<std::string, uint64_t>{"matid/cam-2/results", 2}));
  EXPECT_FALSE(f.publisher->Drain(absl::Milliseconds(20))) << "nothing acknowledged yet";
  EXPECT_EQ(f.Metric("matid_camera_publish_backlog"), 2);
  f.link->AckAll();
  EXPECT_TRUE(f.publisher->Drain(absl::Seconds(10)));
  EXPECT_EQ(f.Metric("matid_camera_results_published_total"), 2);
  EXPECT_EQ(f.Metric("matid_camera_publish_backlog"), 0);
}

TEST(ResultPublisher, AcknowledgementsFromTheLinksThreadAreCounted) {
  Fixture f;
  f.link->set_auto_ack(true);
  f.link->SetUp(true);
  for (uint64_t seq = 1; seq <= 5; ++seq) f.publisher->Publish(Message(seq));
  EXPECT_TRUE(f.publisher->Drain(absl::Seconds(10)));
  EXPECT_EQ(f.Metric("matid_camera_results_published_total"), 5);
}

TEST(ResultPublisher, KeepsMessagesWhileTheLinkIsDownAndSendsThemInOrderWhenItReturns) {
  Fixture f;
  f.link->set_auto_ack(true);
  for (uint64_t seq = 1; seq <= 3; ++seq) f.publisher->Publish(Message(seq));
  EXPECT_TRUE(f.link->sent().empty());
  EXPECT_GE(f.Metric("matid_camera_publish_failures_total"), 1);
  EXPECT_EQ(f.Metric("matid_camera_publish_backlog"), 3);
  f.link->SetUp(true);  // the retry thread sends the outbox, no new Publish needed
  ASSERT_TRUE(f.publisher->Drain(absl::Seconds(10)));
  std::vector<uint64_t> order;
  for (const auto& [topic, seq] : f.link->sent()) order.push_back(seq);
  EXPECT_THAT(order, ElementsAre(1, 2, 3));
}

TEST(ResultPublisher, FullOutboxDropsTheOldestAndCountsIt) {
  Fixture f({.max_outbox = 2});
  f.link->set_auto_ack(true);
  for (uint64_t seq = 1; seq <= 5; ++seq) f.publisher->Publish(Message(seq));
  EXPECT_EQ(f.Metric("matid_camera_results_dropped_total"), 3);
  f.link->SetUp(true);
  ASSERT_TRUE(f.publisher->Drain(absl::Seconds(10)));
  std::vector<uint64_t> order;
  for (const auto& [topic, seq] : f.link->sent()) order.push_back(seq);
  EXPECT_THAT(order, ElementsAre(4, 5));
}

TEST(ResultPublisher, CustomTopicTemplateIsUsed) {
  Fixture f({.topic_template = "plant/line-7/{camera_id}/parts"});
  f.link->SetUp(true);
  f.publisher->Publish(Message(1, "cam-9"));
  ASSERT_EQ(f.link->sent().size(), 1u);
  EXPECT_EQ(f.link->sent()[0].first, "plant/line-7/cam-9/parts");
}

TEST(ResultPublisher, BadOptionsAreRefusedNamingTheFlag) {
  auto never = [](PublishLink::Callbacks) -> absl::StatusOr<std::unique_ptr<PublishLink>> {
    ADD_FAILURE() << "no link is made for bad options";
    return absl::InternalError("unreachable");
  };
  for (int max_outbox : {0, -5}) {
    auto refused = ResultPublisher::Create({.max_outbox = max_outbox}, never, nullptr);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.status().message(), HasSubstr("--max_outbox"));
  }
  auto refused = ResultPublisher::Create({.topic_template = "matid/+/results"}, never, nullptr);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("--mqtt_topic_template"));
}

TEST(ResultPublisher, LinkFailureAtCreationIsReturned) {
  auto created = ResultPublisher::Create(
      {},
      [](PublishLink::Callbacks) -> absl::StatusOr<std::unique_ptr<PublishLink>> {
        return absl::InvalidArgumentError("TLS setup failed");
      },
      nullptr);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(created.status().message(), HasSubstr("TLS"));
}

}  // namespace
}  // namespace matid
