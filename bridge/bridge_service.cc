#include "bridge/bridge_service.h"

#include <atomic>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace matid {

// The Bridge's CloudLink over the cloud MqttClient (QoS 1); the client is
// attached once it exists (the Bridge is built first, its callbacks need it).
class BridgeService::CloudLinkAdapter final : public CloudLink {
 public:
  void set_client(MqttClient* client) { client_.store(client); }
  bool connected() const override {
    MqttClient* client = client_.load();
    return client != nullptr && client->connected();
  }
  absl::StatusOr<int> Publish(const std::string& topic, absl::string_view payload) override {
    MqttClient* client = client_.load();
    if (client == nullptr) return absl::UnavailableError("cloud client not started");
    return client->Publish(topic, payload, 1);
  }
  void DropUnacknowledged() override {
    MqttClient* client = client_.load();
    if (client == nullptr) return;
    if (absl::Status reset = client->ResetSession(); !reset.ok()) LogError("%s", reset.ToString());
  }

 private:
  std::atomic<MqttClient*> client_{nullptr};
};

absl::StatusOr<std::unique_ptr<BridgeService>> BridgeService::Create(
    const BridgeServiceOptions& options) {
  if (options.cloud.host.empty()) {
    return absl::InvalidArgumentError(
        "--cloud_endpoint is required (docker compose: set MATID_CLOUD_ENDPOINT in .env)");
  }
  if (!options.cloud_plaintext &&
      (options.cloud.ca_file.empty() || options.cloud.cert_file.empty() ||
       options.cloud.key_file.empty())) {
    return absl::InvalidArgumentError(
        "--cloud_ca, --cloud_cert and --cloud_key are required (mutual TLS, as AWS IoT Core "
        "wants); --cloud_insecure_plaintext only for tests");
  }
  if (!options.on_spool_failure) {
    return absl::InvalidArgumentError("BridgeServiceOptions.on_spool_failure is required");
  }
  std::unique_ptr<BridgeService> service(new BridgeService(options));
  absl::Status started = service->Start();
  if (!started.ok()) return started;
  return service;
}

BridgeService::BridgeService(const BridgeServiceOptions& options)
    : options_(options), cloud_down_since_(absl::Now()) {}

absl::Status BridgeService::Start() {
  auto spool = Spool::Open(options_.spool);
  if (!spool.ok()) return spool.status();
  spool_ = *std::move(spool);

  auto metrics = MetricsEndpoint::Create(options_.metrics_host, options_.metrics_port);
  if (!metrics.ok()) return metrics.status();
  metrics_ = *std::move(metrics);
  auto& connections = prometheus::BuildCounter()
                          .Name("matid_bridge_connections_total")
                          .Help("Successful (re)connections, by broker")
                          .Register(metrics_->registry());
  local_connections_ = &connections.Add({{"broker", "local"}});
  cloud_connections_ = &connections.Add({{"broker", "cloud"}});

  cloud_link_ = std::make_unique<CloudLinkAdapter>();
  auto bridge =
      Bridge::Create(options_.bridge, spool_.get(), cloud_link_.get(), &metrics_->registry());
  if (!bridge.ok()) return bridge.status();
  bridge_ = *std::move(bridge);

  if (absl::Status cloud = ConnectCloud(); !cloud.ok()) return cloud;
  watchdog_ = std::thread([this] { WatchdogLoop(); });
  return SubscribeLocal();
}

absl::Status BridgeService::ConnectCloud() {
  MqttClient::Callbacks cloud_callbacks;
  cloud_callbacks.on_connection = [this](bool up, const std::string& reason) {
    OnCloudConnection(up, reason);
  };
  cloud_callbacks.on_published = [this](int id) { bridge_->OnCloudAck(id); };
  MqttOptions cloud_options = options_.cloud;
  cloud_options.clean_session = true;  // the spool, not the session, holds our backlog
  if (options_.cloud_plaintext) {
    cloud_options.ca_file.clear();
    cloud_options.cert_file.clear();
    cloud_options.key_file.clear();
  }
  auto cloud = MqttClient::Create(cloud_options, cloud_callbacks);
  if (!cloud.ok()) return cloud.status();
  cloud_ = *std::move(cloud);
  cloud_link_->set_client(cloud_.get());
  return absl::OkStatus();
}

// Last, so nothing is taken from the local broker before it can be stored.
absl::Status BridgeService::SubscribeLocal() {
  MqttClient::Callbacks local_callbacks;
  local_callbacks.on_connection = [this](bool up, const std::string& reason) {
    if (up) local_connections_->Increment();
    LogLine(up ? LogLevel::kInfo : LogLevel::kWarning,
            absl::StrFormat("local broker %s:%d %s%s", options_.local.host, options_.local.port,
                            up ? "connected" : "not connected: ", up ? "" : reason));
  };
  local_callbacks.on_message = [this](const std::string& topic, absl::string_view payload) {
    absl::Status stored = bridge_->OnLocalMessage(topic, payload);
    if (!stored.ok()) {
      // Not stored: exit before the PUBACK is written, so the broker keeps
      // the message for our next run. A supervisor restarts us.
      options_.on_spool_failure(stored);
    }
  };
  MqttOptions local_options = options_.local;
  local_options.clean_session = false;  // the broker keeps what arrives while we are away
  auto local = MqttClient::Create(local_options, local_callbacks);
  if (!local.ok()) return local.status();
  local_ = *std::move(local);
  if (!options_.bridge.local_events_filter.empty()) {
    absl::Status events = local_->Subscribe(options_.bridge.local_events_filter, 1);
    if (!events.ok()) return events;
  }
  return local_->Subscribe(options_.bridge.local_topic_filter, 1);
}

void BridgeService::OnCloudConnection(bool up, const std::string& reason) {
  if (up) cloud_connections_->Increment();
  LogLine(up ? LogLevel::kInfo : LogLevel::kWarning,
          absl::StrFormat("cloud %s:%d %s%s", options_.cloud.host, options_.cloud.port,
                          up ? "connected" : "not connected: ", up ? "" : reason));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!up && cloud_up_) cloud_down_since_ = absl::Now();
    cloud_up_ = up;
  }
  changed_.notify_all();
  bridge_->OnCloudConnection(up);
}

// A cloud that stays unreachable gets a plain warning with what to check (a
// rejected client certificate often shows as a lost connection).
void BridgeService::WatchdogLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  absl::Time next_warning = cloud_down_since_ + options_.cloud_warn_after;
  while (!stopping_) {
    if (cloud_up_) {
      changed_.wait(lock, [&] { return stopping_ || !cloud_up_; });
      next_warning = cloud_down_since_ + options_.cloud_warn_after;
      continue;
    }
    const absl::Time now = absl::Now();
    if (now < next_warning) {
      changed_.wait_for(lock, absl::ToChronoMicroseconds(next_warning - now));
      continue;
    }
    LogWarning(
        "cloud %s:%d unreachable for %.0f s; messages wait in the spool. Check the endpoint "
        "and network, that --cloud_cert/--cloud_key are a certificate the broker trusts (AWS "
        "IoT: registered, active, policy attached) and that --cloud_ca is the broker's CA.",
        options_.cloud.host, options_.cloud.port, absl::ToDoubleSeconds(now - cloud_down_since_));
    next_warning = now + absl::Seconds(60);
  }
}

void BridgeService::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  changed_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  // Stop taking messages, then stop forwarding; the spool keeps the rest.
  local_.reset();
  if (bridge_) bridge_->Stop();
  cloud_.reset();
}

BridgeService::~BridgeService() { Stop(); }

}  // namespace matid
