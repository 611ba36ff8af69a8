// Publishes the camera's result messages to the local MQTT broker with QoS 1
// (topic matid/<camera_id>/results). A message the library refuses (broker
// down) waits in a bounded outbox and is retried; Drain() waits until every
// message was acknowledged by the broker. Publish and Drain may be called
// from any thread.
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
#include "common/mqtt_client.h"
#include "common/result_message.h"
#include "common/result_topic.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace matid {

class ResultPublisher {
 public:
  // `registry` may be nullptr. `max_outbox` bounds memory while the broker
  // is away; beyond it the oldest unsent message is dropped and counted.
  // Messages go to `topic_template` with {camera_id} filled in
  // (common/result_topic.h); INVALID_ARGUMENT for a template without it.
  static absl::StatusOr<std::unique_ptr<ResultPublisher>> Create(
      const MqttOptions& options, int max_outbox, prometheus::Registry* registry,
      std::string topic_template = std::string(kDefaultResultTopicTemplate));
  ~ResultPublisher();

  void Publish(const ResultMessage& message);

  // Waits until every message was acknowledged; false on timeout.
  bool Drain(absl::Duration timeout);

  std::string TopicFor(const std::string& camera_id) const {
    return ResultTopic(topic_template_, camera_id);
  }

 private:
  ResultPublisher(int max_outbox, std::string topic_template)
      : max_outbox_(max_outbox), topic_template_(std::move(topic_template)) {}
  void RetryLoop();
  // Tries to hand the oldest outbox messages to the library. mu_ must be held.
  void FlushLocked();
  void OnAck(int id);

  const int max_outbox_;
  const std::string topic_template_;
  std::unique_ptr<MqttClient> client_;
  prometheus::Counter* published_ = nullptr;
  prometheus::Counter* failures_ = nullptr;
  prometheus::Counter* dropped_ = nullptr;
  prometheus::Gauge* backlog_ = nullptr;

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::pair<std::string, std::string>> outbox_;  // guarded by mu_: (topic, payload)
  std::set<int> unacked_;     // guarded by mu_: handed to the library, no PUBACK yet
  std::set<int> early_acks_;  // guarded by mu_: PUBACKs that beat Publish()'s return
  bool stopping_ = false;     // guarded by mu_
  std::thread retry_;         // joined by the destructor
};

}  // namespace matid

#endif  // MATID_CAMERA_RESULT_PUBLISHER_H_
