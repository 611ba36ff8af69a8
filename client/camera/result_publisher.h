// Publishes the camera's result messages to the local MQTT broker (QoS 1,
// topic matid/<camera_id>/results by default) through an MqttOutbox: a
// message the broker cannot take now waits in the bounded outbox and is
// sent when it is back; Drain() waits until every message was acknowledged.
// Publish and Drain may be called from any thread.
#ifndef MATID_CLIENT_CAMERA_RESULT_PUBLISHER_H_
#define MATID_CLIENT_CAMERA_RESULT_PUBLISHER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/mqtt_outbox.h"
#include "common/publish_link.h"
#include "common/result_message.h"
#include "common/result_topic.h"
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

// The local broker as the result publishers use it: a persistent session
// as `client_id` (the broker keeps our QoS 1 backlog across reconnects),
// reconnecting within 5 s, errors logged as "MQTT".
MqttOptions LocalBrokerOptions(const std::string& host, int port, const std::string& client_id);

class ResultPublisher {
 public:
  // Create with the link to the local broker `mqtt` names, the
  // destination for log lines taken from it.
  static absl::StatusOr<std::unique_ptr<ResultPublisher>> CreateForBroker(
      ResultPublisherOptions options, const MqttOptions& mqtt, prometheus::Registry* registry);

  // Validates the options, then makes the link with the outbox's
  // callbacks. `registry` may be nullptr.
  static absl::StatusOr<std::unique_ptr<ResultPublisher>> Create(
      const ResultPublisherOptions& options, const PublishLinkFactory& make_link,
      prometheus::Registry* registry);

  void Publish(const ResultMessage& message) {
    outbox_->Publish(TopicFor(message.camera_id), ToJson(message));
  }

  // Waits until every message was acknowledged; false on timeout.
  bool Drain(absl::Duration timeout) { return outbox_->Drain(timeout); }

  std::string TopicFor(const std::string& camera_id) const {
    return ResultTopic(topic_template_, camera_id);
  }

 private:
  ResultPublisher(std::string topic_template, std::unique_ptr<MqttOutbox> outbox)
      : topic_template_(std::move(topic_template)), outbox_(std::move(outbox)) {}

  const std::string topic_template_;
  const std::unique_ptr<MqttOutbox> outbox_;
};

}  // namespace matid

#endif  // MATID_CLIENT_CAMERA_RESULT_PUBLISHER_H_
