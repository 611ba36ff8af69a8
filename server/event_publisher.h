// Publishes the model manager's lifecycle events (promotions, rollbacks,
// closed rollback windows: common/event_message.h) to the local MQTT broker
// on matid/<box_id>/events (QoS 1), from where matid-bridge forwards them
// to the cloud. An event the broker cannot take now waits in a bounded
// outbox (common/mqtt_outbox.h) and is sent when it is back.
// Thread-safety: Publish may be called from any thread.
#ifndef MATID_SERVER_EVENT_PUBLISHER_H_
#define MATID_SERVER_EVENT_PUBLISHER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/event_message.h"
#include "common/mqtt_client.h"
#include "common/mqtt_outbox.h"
#include "common/publish_link.h"
#include "prometheus/registry.h"

namespace matid {

struct EventOptions {
  EventOptions() { mqtt.host.clear(); }  // no broker unless one is named

  // The box the server runs on, in every event and its topic; empty: the
  // host name.
  std::string box_id;
  // The local broker; an empty host publishes no events (they are still
  // logged and counted).
  MqttOptions mqtt;
  std::string topic_template = kDefaultEventTopicTemplate;  // {box_id} is replaced
  int max_outbox = 1000;
};

// OK, or INVALID_ARGUMENT naming the flag (--box_id, --events_topic,
// --events_max_outbox) out of range.
absl::Status ValidateEventOptions(const EventOptions& options);

class EventPublisher {
 public:
  // Validates the options and makes the link: `make_link`, or when it is
  // empty an MQTT client to options.mqtt with a persistent session named
  // matid-server-events-<box_id>. `registry` may be nullptr.
  static absl::StatusOr<std::unique_ptr<EventPublisher>> Create(const EventOptions& options,
                                                                PublishLinkFactory make_link,
                                                                prometheus::Registry* registry);

  // Fills in the box id, message id and time, and sends it.
  void Publish(EventMessage event);

  // Waits until every event was acknowledged; false on timeout.
  bool Drain(absl::Duration timeout) { return outbox_->Drain(timeout); }

  const std::string& topic() const { return topic_; }

 private:
  EventPublisher(std::string box_id, std::string topic, std::unique_ptr<MqttOutbox> outbox)
      : box_id_(std::move(box_id)), topic_(std::move(topic)), outbox_(std::move(outbox)) {}

  const std::string box_id_;
  const std::string topic_;
  const std::unique_ptr<MqttOutbox> outbox_;
};

}  // namespace matid

#endif  // MATID_SERVER_EVENT_PUBLISHER_H_
