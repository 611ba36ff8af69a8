// matid-bridge as one service: the SQLite spool, the /metrics endpoint, the
// Bridge (spool -> cloud forwarder), the cloud MQTT link (mutual TLS), the
// local MQTT subscription, and a watchdog that warns when the cloud stays
// unreachable. Create() validates the options, opens and starts everything
// (local subscription last, so nothing is taken before it can be stored);
// Stop() shuts down in order: stop taking messages, stop forwarding, close
// the cloud link. The spool keeps what was not forwarded.
// Thread-safety: Stop() and the accessors from any thread.
#ifndef MATID_BRIDGE_BRIDGE_SERVICE_H_
#define MATID_BRIDGE_BRIDGE_SERVICE_H_

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bridge/bridge.h"
#include "common/metrics_endpoint.h"
#include "common/mqtt_client.h"
#include "common/spool.h"

namespace matid {

struct BridgeServiceOptions {
  SpoolOptions spool;
  BridgeOptions bridge;          // bridge.local_topic_filter is also the subscription
  MqttOptions local;             // the local broker (persistent session)
  MqttOptions cloud;             // the cloud broker; TLS files required unless cloud_plaintext
  bool cloud_plaintext = false;  // tests only
  std::string metrics_host = "0.0.0.0";
  int metrics_port = 8082;  // 0 picks one, -1 turns it off
  // A cloud unreachable this long gets a warning with what to check (then
  // one a minute).
  absl::Duration cloud_warn_after = absl::Seconds(20);
  // Called on the local MQTT thread when a message cannot be spooled (disk
  // full, spool unreadable). It must not return: the message is acknowledged
  // to the local broker only when the callback returns, so ending the
  // process here (the main exits 75; a supervisor restarts it) leaves the
  // message with the broker for the next run. Required.
  std::function<void(const absl::Status&)> on_spool_failure;
};

class BridgeService {
 public:
  static absl::StatusOr<std::unique_ptr<BridgeService>> Create(const BridgeServiceOptions& options);
  ~BridgeService();  // Stop()

  BridgeService(const BridgeService&) = delete;
  BridgeService& operator=(const BridgeService&) = delete;

  int metrics_port() const { return metrics_->port(); }
  // Idempotent.
  void Stop();

 private:
  class CloudLinkAdapter;

  explicit BridgeService(const BridgeServiceOptions& options);
  absl::Status Start();
  // Start's steps after the spool and the forwarder: the cloud link, then
  // the local broker's subscription.
  absl::Status ConnectCloud();
  absl::Status SubscribeLocal();
  void OnCloudConnection(bool up, const std::string& reason);
  void WatchdogLoop();

  // Constant after construction.
  const BridgeServiceOptions options_;
  // Destroyed in reverse order of creation.
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<MetricsEndpoint> metrics_;
  prometheus::Counter* local_connections_ = nullptr;
  prometheus::Counter* cloud_connections_ = nullptr;
  std::unique_ptr<CloudLinkAdapter> cloud_link_;
  std::unique_ptr<Bridge> bridge_;
  std::unique_ptr<MqttClient> cloud_;
  std::unique_ptr<MqttClient> local_;

  std::mutex mu_;
  std::condition_variable changed_;
  bool cloud_up_ = false;        // guarded by mu_
  absl::Time cloud_down_since_;  // guarded by mu_
  bool stopping_ = false;        // guarded by mu_
  std::thread watchdog_;         // joined by Stop()
};

}  // namespace matid

#endif  // MATID_BRIDGE_BRIDGE_SERVICE_H_
