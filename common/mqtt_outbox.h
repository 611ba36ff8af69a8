// Publishes (topic, payload) messages over a PublishLink (the local MQTT
// broker, QoS 1) without losing them to a broker that is away: a message
// the link refuses waits in a bounded outbox and is sent again when the
// link comes back; Drain() waits until every message was acknowledged.
// Beyond max_outbox the oldest unsent message is dropped and counted.
// Used by the camera's results and the server's model events.
// Thread-safety: Publish and Drain may be called from any thread.
#ifndef MATID_COMMON_MQTT_OUTBOX_H_
#define MATID_COMMON_MQTT_OUTBOX_H_

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/publish_link.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace matid {

struct MqttOutboxOptions {
  // Messages kept while the broker is away. Bounds memory.
  int max_outbox = 10000;
  // Log lines: "<destination> connected" (common/log.h).
  std::string destination = "MQTT broker";
  // Metric names; `what` ("Results") names the messages in their help.
  struct MetricNames {
    std::string published;  // counter: acknowledged by the broker
    std::string failures;   // counter: publish attempts refused
    std::string dropped;    // counter: dropped, outbox full
    std::string backlog;    // gauge: waiting to be published or acknowledged
  };
  MetricNames metrics = {"matid_messages_published_total", "matid_publish_failures_total",
                         "matid_messages_dropped_total", "matid_publish_backlog"};
  std::string what = "Messages";
};

class MqttOutbox {
 public:
  // Makes the link with the outbox's callbacks. INVALID_ARGUMENT naming
  // --max_outbox when it is out of 1..10000000. `registry` may be nullptr.
  static absl::StatusOr<std::unique_ptr<MqttOutbox>> Create(const MqttOutboxOptions& options,
                                                            const PublishLinkFactory& make_link,
                                                            prometheus::Registry* registry);
  // Stops retrying and closes the link; messages not yet acknowledged are
  // left to the link (call Drain first to wait for them).
  ~MqttOutbox();

  MqttOutbox(const MqttOutbox&) = delete;
  MqttOutbox& operator=(const MqttOutbox&) = delete;

  void Publish(std::string topic, std::string payload);

  // Waits until every message was acknowledged; false on timeout.
  bool Drain(absl::Duration timeout);

 private:
  explicit MqttOutbox(const MqttOutboxOptions& options) : options_(options) {}
  // Sends the outbox again whenever the link is up and it holds messages.
  void RetryLoop();
  // Hands the oldest outbox messages to the link. mu_ must be held.
  void FlushLocked();
  void OnAck(int id);
  void OnConnection(bool up, const std::string& reason);

  const MqttOutboxOptions options_;
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

#endif  // MATID_COMMON_MQTT_OUTBOX_H_
