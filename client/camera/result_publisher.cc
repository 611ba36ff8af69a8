#include "client/camera/result_publisher.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace matid {

absl::Status ValidateResultPublisherOptions(const ResultPublisherOptions& options) {
  if (options.max_outbox < 1 || options.max_outbox > 10'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_outbox is ", options.max_outbox, "; must be in 1..10000000"));
  }
  absl::Status topic = ValidateResultTopicTemplate(options.topic_template);
  if (!topic.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--mqtt_topic_template: ", topic.message()));
  }
  return absl::OkStatus();
}

MqttOptions LocalBrokerOptions(const std::string& host, int port, const std::string& client_id) {
  MqttOptions mqtt;
  mqtt.host = host;
  mqtt.port = port;
  mqtt.client_id = client_id;
  mqtt.clean_session = false;
  mqtt.reconnect_max = absl::Seconds(5);
  mqtt.log_prefix = "MQTT";
  return mqtt;
}

absl::StatusOr<std::unique_ptr<ResultPublisher>> ResultPublisher::CreateForBroker(
    ResultPublisherOptions options, const MqttOptions& mqtt, prometheus::Registry* registry) {
  options.destination = absl::StrCat("MQTT broker ", mqtt.host, ":", mqtt.port);
  return Create(options, MqttPublishLinkFactory(mqtt), registry);
}

absl::StatusOr<std::unique_ptr<ResultPublisher>> ResultPublisher::Create(
    const ResultPublisherOptions& options, const PublishLinkFactory& make_link,
    prometheus::Registry* registry) {
  absl::Status valid = ValidateResultPublisherOptions(options);
  if (!valid.ok()) return valid;
  MqttOutboxOptions outbox_options;
  outbox_options.max_outbox = options.max_outbox;
  outbox_options.destination = options.destination;
  outbox_options.metrics = {"matid_camera_results_published_total",
                            "matid_camera_publish_failures_total",
                            "matid_camera_results_dropped_total", "matid_camera_publish_backlog"};
  outbox_options.what = "Results";
  auto outbox = MqttOutbox::Create(outbox_options, make_link, registry);
  if (!outbox.ok()) return outbox.status();
  return std::unique_ptr<ResultPublisher>(
      new ResultPublisher(options.topic_template, *std::move(outbox)));
}

}  // namespace matid
