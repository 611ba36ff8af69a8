#include "server/event_publisher.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace matid {

absl::Status ValidateEventOptions(const EventOptions& options) {
  if (options.box_id.find_first_of("/+#") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--box_id '", options.box_id, "' must not contain /, + or #"));
  }
  if (!absl::StrContains(options.topic_template, "{box_id}") ||
      options.topic_template.find_first_of("+#") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--events_topic '", options.topic_template,
                     "' must contain {box_id} and no MQTT wildcards"));
  }
  if (options.max_outbox < 1 || options.max_outbox > 1'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--events_max_outbox is ", options.max_outbox, "; must be in 1..1000000"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EventPublisher>> EventPublisher::Create(
    const EventOptions& options, PublishLinkFactory make_link, prometheus::Registry* registry) {
  if (absl::Status valid = ValidateEventOptions(options); !valid.ok()) return valid;
  std::string box_id = options.box_id;
  if (box_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    box_id = host[0] != '\0' ? host : "matid";
  }
  if (!make_link) {
    MqttOptions mqtt = options.mqtt;
    if (mqtt.client_id.empty()) mqtt.client_id = absl::StrCat("matid-server-events-", box_id);
    mqtt.clean_session = false;  // the broker keeps what it has not acknowledged
    make_link = MqttPublishLinkFactory(mqtt);
  }
  MqttOutboxOptions outbox_options;
  outbox_options.max_outbox = options.max_outbox;
  outbox_options.destination =
      absl::StrCat("MQTT broker ", options.mqtt.host, ":", options.mqtt.port, " (events)");
  outbox_options.metrics = {"matid_events_published_total", "matid_events_publish_failures_total",
                            "matid_events_dropped_total", "matid_events_publish_backlog"};
  outbox_options.what = "Model events";
  auto outbox = MqttOutbox::Create(outbox_options, make_link, registry);
  if (!outbox.ok()) return outbox.status();
  std::string topic = absl::StrReplaceAll(options.topic_template, {{"{box_id}", box_id}});
  return std::unique_ptr<EventPublisher>(
      new EventPublisher(std::move(box_id), std::move(topic), *std::move(outbox)));
}

void EventPublisher::Publish(EventMessage event) {
  event.box_id = box_id_;
  StampEvent(absl::Now(), event);
  outbox_->Publish(topic_, ToJson(event));
}

}  // namespace matid
