#include "common/publish_link.h"

#include <utility>

namespace matid {
namespace {

class MqttPublishLink final : public PublishLink {
 public:
  explicit MqttPublishLink(std::unique_ptr<MqttClient> client) : client_(std::move(client)) {}

  absl::StatusOr<int> Publish(const std::string& topic, absl::string_view payload) override {
    return client_->Publish(topic, payload, /*qos=*/1);
  }

 private:
  std::unique_ptr<MqttClient> client_;
};

}  // namespace

PublishLinkFactory MqttPublishLinkFactory(const MqttOptions& options) {
  return
      [options](PublishLink::Callbacks callbacks) -> absl::StatusOr<std::unique_ptr<PublishLink>> {
        MqttClient::Callbacks mqtt;
        mqtt.on_published = std::move(callbacks.on_acked);
        mqtt.on_connection = std::move(callbacks.on_connection);
        auto client = MqttClient::Create(options, std::move(mqtt));
        if (!client.ok()) return client.status();
        return std::make_unique<MqttPublishLink>(*std::move(client));
      };
}

}  // namespace matid
