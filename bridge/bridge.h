// The bridge's logic between the local broker and the cloud: every result
// message (and every model event, common/event_message.h) from the local
// broker is checked and written to the spool (or to
// the dead-letter table with its reason) before the local PUBACK; a
// forwarder thread publishes the spool's oldest messages to the cloud with
// QoS 1, one publish in flight, batching several messages (JSON lines)
// under the payload cap when a backlog drains, paced under the cloud's
// publish-rate cap; a message leaves the spool only after the cloud's
// PUBACK. At-least-once: a lost PUBACK means a resend with the same
// message_id.
// Thread-safety: OnLocalMessage, OnCloudAck and OnCloudConnection may be
// called from any thread (the MQTT network threads); Stop from any thread
// but the forwarder.
#ifndef MATID_BRIDGE_BRIDGE_H_
#define MATID_BRIDGE_BRIDGE_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bridge/refused_message_isolation.h"
#include "common/event_message.h"
#include "common/result_topic.h"
#include "common/spool.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace matid {

// Where the bridge publishes: the real one is an MqttClient to AWS IoT Core.
class CloudLink {
 public:
  virtual ~CloudLink() = default;
  virtual bool connected() const = 0;
  // Publishes with QoS 1 and returns the message id; the PUBACK must be
  // reported with Bridge::OnCloudAck(id).
  virtual absl::StatusOr<int> Publish(const std::string& topic, absl::string_view payload) = 0;
  // Forgets publishes not yet acknowledged, so that the MQTT library does
  // not send them again by itself on its next connection (the spool, not
  // the library, decides what is sent again, and in what order).
  virtual void DropUnacknowledged() = 0;
};

struct BridgeOptions {
  // The local subscription; a message's topic must match it and, when it has
  // one "+" level, carry the message's camera_id there (common/result_topic.h).
  std::string local_topic_filter = ResultTopicFilter(kDefaultResultTopicTemplate);
  // Cloud topic; {camera_id} is replaced by the message's camera id.
  std::string cloud_topic_template = std::string(kDefaultResultTopicTemplate);
  // Model events (matid-server --events_mqtt_host): the local subscription
  // (empty: none; its "+" level must be the event's box_id) and the cloud
  // topic, {box_id} replaced.
  std::string local_events_filter = "matid/+/events";
  std::string cloud_events_topic_template = kDefaultEventTopicTemplate;
  // Batching while a backlog drains; one message is sent alone.
  int batch_max_messages = 50;
  int64_t batch_max_bytes = 100 * 1024;            // AWS IoT Core rejects payloads over 128 KB
  double max_publishes_per_second = 50;            // AWS IoT Core allows 100/s per connection
  absl::Duration ack_timeout = absl::Seconds(10);  // then the batch is resent
  // After a failed publish: exponential backoff with full jitter between these.
  absl::Duration retry_backoff_initial = absl::Milliseconds(100);
  absl::Duration retry_backoff_max = absl::Seconds(10);
  absl::Duration housekeeping_interval = absl::Seconds(2);  // limits and gauges
};

class Bridge {
 public:
  // `spool` and `cloud` must outlive the bridge; `registry` may be nullptr.
  static absl::StatusOr<std::unique_ptr<Bridge>> Create(const BridgeOptions& options, Spool* spool,
                                                        CloudLink* cloud,
                                                        prometheus::Registry* registry);
  ~Bridge();  // Stop()

  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // A message from the local broker. Returns once it is durably spooled or
  // dead-lettered. A spool write failure is returned: the caller must not
  // let the message be acknowledged (the bridge program exits).
  absl::Status OnLocalMessage(const std::string& topic, absl::string_view payload);
  void OnCloudAck(int message_id);
  void OnCloudConnection(bool connected);

  // Stops the forwarder; spooled messages stay for the next run.
  void Stop();

  // The cloud topic for a camera.
  std::string CloudTopic(absl::string_view camera_id) const;
  // The cloud topic for a box's model events.
  std::string CloudEventsTopic(absl::string_view box_id) const;

 private:
  struct Metrics {
    prometheus::Counter* received = nullptr;
    prometheus::Counter* spooled = nullptr;
    prometheus::Counter* duplicates = nullptr;
    prometheus::Counter* dead_letters = nullptr;
    prometheus::Gauge* dead_letters_kept = nullptr;
    prometheus::Counter* forwarded = nullptr;
    prometheus::Counter* publishes = nullptr;
    prometheus::Counter* publish_failures = nullptr;
    prometheus::Counter* moved_to_back = nullptr;
    prometheus::Counter* dropped = nullptr;
    prometheus::Gauge* backlog_messages = nullptr;
    prometheus::Gauge* backlog_bytes = nullptr;
    prometheus::Gauge* oldest_age = nullptr;
    prometheus::Gauge* cloud_connected = nullptr;
  };

  Bridge(const BridgeOptions& options, Spool* spool, CloudLink* cloud);
  // A local message's id and cloud topic, or why it is a dead letter
  // (including what the cloud would refuse: bridge/cloud_limits.h).
  absl::StatusOr<std::pair<std::string, std::string>> Route(const std::string& topic,
                                                            absl::string_view payload) const;
  // The id and cloud topic from the message's content and local topic.
  absl::StatusOr<std::pair<std::string, std::string>> RouteByContent(
      const std::string& topic, absl::string_view payload) const;
  void BuildMetrics(prometheus::Registry& registry);
  void ForwarderLoop();
  // Waits `delay` unless Stop() comes first; false when stopping.
  bool PauseUnlessStopping(absl::Duration delay);
  // Publishes one batch and waits for its PUBACK; true when delivered.
  bool ForwardOnce();
  // A publish of `seqs` was not acknowledged: what isolation_ says next.
  void NotAcknowledged(const std::vector<int64_t>& seqs);
  // Drops what is over the spool's size or age limit, counting it.
  void EnforceSpoolLimits();
  // Reads the spool's figures into the backlog gauges and returns them.
  absl::StatusOr<SpoolStats> RefreshBacklog();
  static void Add(prometheus::Counter* counter, double amount = 1);

  // Constant after construction.
  const BridgeOptions options_;
  Spool* const spool_;
  CloudLink* const cloud_;
  Metrics metrics_;

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  bool work_hint_ = true;  // guarded by mu_: something may be spooled
  // Guarded by mu_: cloud PUBACKs seen since the current publish began (an
  // ack can arrive before Publish() has even returned its id).
  std::set<int> acked_ids_;

  RefusedMessageIsolation isolation_;  // the forwarder thread's only
  std::thread forwarder_;              // joined by Stop()
};

}  // namespace matid

#endif  // MATID_BRIDGE_BRIDGE_H_
