// Where an MQTT outbox (mqtt_outbox.h) hands its messages: the local MQTT
// broker with QoS 1 in production (MqttPublishLinkFactory), a fake in unit
// tests. A link
// reports broker acknowledgements and connection changes through callbacks,
// which may run on any thread (for MQTT: the client's network thread).
// Publish may be called from any thread.
#ifndef MATID_COMMON_PUBLISH_LINK_H_
#define MATID_COMMON_PUBLISH_LINK_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mqtt_client.h"

namespace matid {

class PublishLink {
 public:
  struct Callbacks {
    // The broker acknowledged the message with this id.
    std::function<void(int message_id)> on_acked;
    // The link came up (true) or went down (false), with the reason.
    std::function<void(bool up, const std::string& reason)> on_connection;
  };

  virtual ~PublishLink() = default;

  // Hands one message over for delivery; returns its id, which on_acked
  // reports later (possibly before Publish returns). UNAVAILABLE when the
  // link cannot take it now (broker unreachable).
  virtual absl::StatusOr<int> Publish(const std::string& topic, absl::string_view payload) = 0;
};

// Makes the link once the publisher knows where its callbacks go.
using PublishLinkFactory =
    std::function<absl::StatusOr<std::unique_ptr<PublishLink>>(PublishLink::Callbacks)>;

// QoS 1 messages to the MQTT broker `options` names (see MqttClient).
PublishLinkFactory MqttPublishLinkFactory(const MqttOptions& options);

}  // namespace matid

#endif  // MATID_COMMON_PUBLISH_LINK_H_
