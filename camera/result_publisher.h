// Publishes the camera's result messages over a PublishLink (the local MQTT
// broker, QoS 1, topic matid/<camera_id>/results by default). A message the
// link refuses (broker down) waits in a bounded outbox and is sent again
// when the link comes back; Drain() waits until every message was
// acknowledged. Publish and Drain may be called from any thread.
#ifndef MATID_CAMERA_RESULT_PUBLISHER_H_
#define MATID_CAMERA_RESULT_PUBLISHER_H_

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "camera/publish_link.h"
#include "common/result_message.h"
#include "common/result_topic.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace matid {

struct ResultPublisherOptions {
  // Messages kept while the broker is away; beyond it the oldest unsent
  // message is dropped and counted. Bounds memory.
  int max_outbox = 10000;
  // Topic with {camera_id} filled in (common/result_topic.h).
  std::string topic_template = std::string(kDefaultResultTopicTemplate);
  // Names the destination in log lines ("MQTT broker 127.0.0.1:1883").
  std::string destination = "MQTT broker";
};

// OK, or INVALID_ARGUMENT naming the flag (--max_outbox,
// --mqtt_topic_template) of the first option out of range.
absl::Status ValidateResultPublisherOptions(const ResultPublisherOptions& options);

class ResultPublisher {
 public:
  // Validates the options, then makes the link with the publisher's
  // callbacks. `registry` may be nullptr.
  static absl::StatusOr<std::unique_ptr<ResultPublisher>> Create(
      const ResultPublisherOptions& options, const PublishLinkFactory& make_link,
      prometheus::Registry* registry);
  // Stops retrying and closes the link; messages not yet acknowledged are
  // left to the link (call Drain first to wait for them).
  ~ResultPublisher();

  void Publish(const ResultMessage& message);

  // Waits until every message was acknowledged; false on timeout.
  bool Drain(absl::Duration timeout);

  std::string TopicFor(const std::string& camera_id) const {
    return ResultTopic(options_.topic_template, camera_id);
  }

 private:
  explicit ResultPublisher(const ResultPublisherOptions& options) : options_(options) {}
  // Sends the outbox again whenever the link is up and it holds messages.
  void RetryLoop();
  // Hands the oldest outbox messages to the link. mu_ must be held.
  void FlushLocked();
  void OnAck(int id);
  void OnConnection(bool up, const std::string& reason);

  const ResultPublisherOptions options_;
  std::unique_ptr<PublishLink> link_;
  prometheus::Counter* published_ = nullptr;
  prometheus::Counter* failures_ = nullptr;
  prometheus::Counter* dropped_ = nullptr;
  prometheus::Gauge* backlog_ = nullptr;

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::pair<std::string, std::string>> outbox_;  // guarded by mu_: (topic, payload)
  std::set<int> unacked_;     // guarded by mu_: handed to the link, not acknowledged
  std::set<int> early_acks_;  // guarded by mu_: acknowledgements that beat Publish()'s return
  bool link_up_ = false;      // guarded by mu_: as the link last reported
  bool stopping_ = false;     // guarded by mu_
  std::thread retry_;         // joined by the destructor
};

}  // namespace matid

#endif  // MATID_CAMERA_RESULT_PUBLISHER_H_
