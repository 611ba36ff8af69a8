// matid-sparkplug as one service: results from the local broker are
// checked and stored in a spool (common/spool.h) before their local PUBACK;
// a forwarder thread publishes them to the plant's MQTT server as a
// Sparkplug B edge node (sparkplug/edge_node_session.h): NBIRTH and DBIRTHs
// after every CONNECT and on an NCMD rebirth, a DDATA per result, NDATA
// when the server's model or state changes, DDEATH for a silent camera,
// NDEATH as the MQTT will and before a deliberate disconnect.
//
// Delivery: Sparkplug publishes with QoS 0, so a DDATA leaves the spool
// only once a QoS 1 delivery marker published after it (on marker_topic,
// outside the spBv1.0 namespace) is acknowledged: the server handles one
// connection's packets in order, so the marker's PUBACK means every DDATA
// before it arrived. What a lost connection leaves unconfirmed is sent
// again in the next session, flagged is_historical, as are results stored
// while the plant server was away. At least once: a consumer drops repeats
// by the Result/Message ID metric.
//
// With a primary host application (primary_host_id), births wait for its
// STATE to say online, and the node publishes NDEATH and reconnects when it
// goes offline (sparkplug/primary_host.h); results wait in the spool
// meanwhile.
// Thread-safety: Stop() from any thread; callbacks from the MQTT threads.
#ifndef MATID_SPARKPLUG_SPARKPLUG_NODE_H_
#define MATID_SPARKPLUG_SPARKPLUG_NODE_H_

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics_endpoint.h"
#include "common/mqtt_client.h"
#include "common/spool.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "sparkplug/edge_node_session.h"
#include "sparkplug/primary_host.h"
#include "sparkplug/server_status.h"

namespace matid::sparkplug {

struct SparkplugNodeOptions {
  EdgeNodeOptions session;
  std::string primary_host_id;     // empty: no primary host application
  MqttOptions local;               // the local broker (persistent session)
  std::string local_topic_filter;  // the camera results
  MqttOptions plant;               // the plant's MQTT server (TLS, username/password)
  SpoolOptions spool;
  // The QoS 1 delivery marker's topic; "{node}" is replaced by the node id.
  std::string marker_topic = "matid/sparkplug/{node}/delivered";
  int batch_max_messages = 50;  // DDATA per delivery marker
  absl::Duration marker_timeout = absl::Seconds(10);
  absl::Duration housekeeping_interval = absl::Seconds(1);  // camera timeouts, gauges
  // matid-server's Health for the node's model and state metrics; null: not
  // asked ("Server/State" is "NOT_MONITORED").
  std::shared_ptr<grpc::Channel> server;
  absl::Duration health_interval = absl::Seconds(5);
  std::string metrics_host = "0.0.0.0";
  int metrics_port = 8084;  // 0 picks one, -1 turns it off
  // As BridgeServiceOptions::on_spool_failure: must not return. Required.
  std::function<void(const absl::Status&)> on_spool_failure;
};

class SparkplugNode {
 public:
  static absl::StatusOr<std::unique_ptr<SparkplugNode>> Create(SparkplugNodeOptions options);
  ~SparkplugNode();  // Stop()

  SparkplugNode(const SparkplugNode&) = delete;
  SparkplugNode& operator=(const SparkplugNode&) = delete;

  int metrics_port() const { return endpoint_->port(); }
  // Stops taking results, publishes NDEATH and disconnects; the spool keeps
  // what was not delivered. Idempotent.
  void Stop();

 private:
  struct Metrics {
    prometheus::Counter* received = nullptr;
    prometheus::Counter* dead_letters = nullptr;
    prometheus::Counter* ddata = nullptr;
    prometheus::Counter* historical = nullptr;
    prometheus::Counter* births = nullptr;
    prometheus::Counter* rebirth_requests = nullptr;
    prometheus::Gauge* backlog = nullptr;
    prometheus::Gauge* plant_connected = nullptr;
  };

  SparkplugNode(SparkplugNodeOptions options, EdgeNodeSession session,
                std::optional<PrimaryHost> host);
  absl::Status Start();
  void BuildMetrics();
  absl::Status ConnectPlant();
  absl::Status SubscribeLocal();
  void OnLocalMessage(const std::string& topic, absl::string_view payload);
  void OnPlantConnection(bool up, const std::string& reason);
  void OnPlantMessage(const std::string& topic, absl::string_view payload);
  void OnPlantAck(int message_id);
  MqttOptions::Will NextWill();
  NodeStatus CurrentStatus() const;

  void ForwarderLoop();
  // Births, node status and camera timeouts, as the session decides.
  std::vector<Outgoing> SessionMessages(absl::Time now);
  // Publishes in order; false when the plant server refused one.
  bool PublishAll(const std::vector<Outgoing>& messages);
  // One batch of spooled results as DDATA, then the marker; removed from
  // the spool once the marker is acknowledged. False when nothing was sent.
  bool ForwardBatch();
  // The DDATA for one spooled result, or a dead letter (too many cameras).
  absl::StatusOr<std::vector<Outgoing>> ResultMessages(const SpooledMessage& message,
                                                       absl::Time now);
  // Waits for the QoS 1 acknowledgement of `message_id`; false on timeout,
  // a lost connection or (when `until_stopping`) Stop().
  // A birth is due and the primary host (if any) is online. mu_ held.
  bool BirthReady() const { return birth_due_ && (!host_ || host_->online()); }
  // The primary host went offline: NDEATH, then a new connection.
  void LeaveSession();
  bool WaitForAck(int message_id, absl::Duration timeout, bool until_stopping);
  // Drops what is over the spool's limits and sets the backlog gauge.
  void Housekeeping(absl::Time now);

  const SparkplugNodeOptions options_;
  Metrics metrics_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<MetricsEndpoint> endpoint_;
  std::unique_ptr<ServerStatusPoller> server_status_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  EdgeNodeSession session_;          // guarded by mu_
  bool plant_up_ = false;            // guarded by mu_
  bool birth_due_ = false;           // guarded by mu_: after a CONNECT or a rebirth request
  std::optional<PrimaryHost> host_;  // guarded by mu_
  bool leave_due_ = false;           // guarded by mu_: the primary host went offline
  bool reconnected_ = false;         // guarded by mu_: no birth since the CONNECT
  absl::Time born_at_;               // guarded by mu_: results received earlier are historical
  bool work_hint_ = true;            // guarded by mu_
  bool stopping_ = false;            // guarded by mu_
  std::set<int> acked_;              // guarded by mu_: QoS 1 acks since the marker was sent
  std::unique_ptr<MqttClient> plant_;
  std::unique_ptr<MqttClient> local_;
  std::thread forwarder_;  // joined by Stop()
};

}  // namespace matid::sparkplug

#endif  // MATID_SPARKPLUG_SPARKPLUG_NODE_H_
