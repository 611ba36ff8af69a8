// matid-bridge: local MQTT broker -> SQLite spool -> AWS IoT Core (MQTT over
// mutual TLS). Parses flags, wires the pieces, runs until SIGTERM/SIGINT.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "bridge/bridge.h"
#include "bridge/spool.h"
#include "common/metrics_endpoint.h"
#include "common/mqtt_client.h"
#include "common/mutex_deadlock_detection.h"
#include "common/program_flags.h"
#include "common/result_topic.h"
#include "common/stop_signals.h"

ABSL_FLAG(std::string, local_host, "127.0.0.1", "Local MQTT broker host.");
ABSL_FLAG(int, local_port, 1883, "Local MQTT broker port.");
ABSL_FLAG(std::string, local_topic, matid::ResultTopicFilter(matid::kDefaultResultTopicTemplate),
          "Topic filter the cameras publish on (their --mqtt_topic_template with + for "
          "{camera_id}); a message whose topic does not match it, or names another camera at "
          "the + level, goes to dead letters.");
ABSL_FLAG(std::string, local_client_id, "matid-bridge",
          "Client id at the local broker (persistent session).");
ABSL_FLAG(std::string, cloud_endpoint, "",
          "Cloud broker host, e.g. xxxxxxxx-ats.iot.eu-west-1.amazonaws.com. Required.");
ABSL_FLAG(int, cloud_port, 8883, "Cloud broker port (AWS IoT Core: 8883).");
ABSL_FLAG(std::string, cloud_client_id, "matid-edge-1",
          "Client id at the cloud (the AWS IoT thing name).");
ABSL_FLAG(std::string, cloud_ca, "",
          "CA certificate file for the cloud broker (AWS: AmazonRootCA1.pem).");
ABSL_FLAG(std::string, cloud_cert, "", "Client certificate file (the thing's certificate).");
ABSL_FLAG(std::string, cloud_key, "", "Client private key file.");
ABSL_FLAG(bool, cloud_insecure_plaintext, false,
          "Connect to the cloud broker without TLS (tests only).");
ABSL_FLAG(std::string, cloud_topic_template, "matid/{camera_id}/results",
          "Cloud topic; {camera_id} is replaced.");
ABSL_FLAG(int, batch_max_messages, 50,
          "Most messages in one cloud publish (JSON lines) when a backlog drains.");
ABSL_FLAG(int, batch_max_bytes, 100 * 1024,
          "Most payload bytes in one cloud publish (AWS cap: 128 KB).");
ABSL_FLAG(double, max_publishes_per_second, 50,
          "Pace of cloud publishes (AWS cap: 100/s per connection).");
ABSL_FLAG(std::string, spool_path, "matid-spool.db", "SQLite spool file.");
ABSL_FLAG(int64_t, spool_max_mb, 256,
          "Spool size limit in MiB; the oldest messages are dropped beyond it.");
ABSL_FLAG(double, spool_max_age_hours, 168, "Messages older than this are dropped.");
ABSL_FLAG(bool, spool_sync_full, true, "fsync every spool commit (power-loss safe; slower).");
ABSL_FLAG(int, cloud_warn_after_seconds, 20,
          "Warn (and repeat every 60 s) when the cloud stays unreachable this long.");
ABSL_FLAG(std::string, metrics_host, "0.0.0.0", "Address /metrics listens on.");
ABSL_FLAG(int, metrics_port, 8082, "Prometheus /metrics port; 0 picks one; -1 turns it off.");

namespace {

// Publishes through an MqttClient (QoS 1).
class MqttCloudLink final : public matid::CloudLink {
 public:
  void set_client(matid::MqttClient* client) { client_.store(client); }
  bool connected() const override {
    matid::MqttClient* client = client_.load();
    return client != nullptr && client->connected();
  }
  absl::StatusOr<int> Publish(const std::string& topic, absl::string_view payload) override {
    matid::MqttClient* client = client_.load();
    if (client == nullptr) return absl::UnavailableError("cloud client not started");
    return client->Publish(topic, payload, 1);
  }

 private:
  std::atomic<matid::MqttClient*> client_{nullptr};
};

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "matid-bridge: %s\n", status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  matid::ParseProgramFlags(
      argc, argv,
      "Forwards camera results from the local MQTT broker to AWS IoT Core, durably.\n"
      "Usage: matid-bridge --cloud_endpoint=HOST --cloud_ca=CA --cloud_cert=CERT --cloud_key=KEY");
  matid::TurnOffMutexDeadlockDetection();
  const matid::StopSignals stop_signals;  // before any thread starts

  if (absl::GetFlag(FLAGS_cloud_endpoint).empty()) {
    return Fail(absl::InvalidArgumentError(
        "--cloud_endpoint is required (docker compose: set MATID_CLOUD_ENDPOINT in .env)"));
  }
  const bool plaintext = absl::GetFlag(FLAGS_cloud_insecure_plaintext);
  if (!plaintext &&
      (absl::GetFlag(FLAGS_cloud_ca).empty() || absl::GetFlag(FLAGS_cloud_cert).empty() ||
       absl::GetFlag(FLAGS_cloud_key).empty())) {
    return Fail(absl::InvalidArgumentError(
        "--cloud_ca, --cloud_cert and --cloud_key are required (mutual TLS, as AWS IoT Core "
        "wants); --cloud_insecure_plaintext only for tests"));
  }

  matid::SpoolOptions spool_options;
  spool_options.path = absl::GetFlag(FLAGS_spool_path);
  spool_options.max_bytes = absl::GetFlag(FLAGS_spool_max_mb) << 20;
  spool_options.max_age = absl::Hours(absl::GetFlag(FLAGS_spool_max_age_hours));
  spool_options.sync_full = absl::GetFlag(FLAGS_spool_sync_full);
  auto spool = matid::Spool::Open(spool_options);
  if (!spool.ok()) return Fail(spool.status());

  auto metrics = matid::MetricsEndpoint::Create(absl::GetFlag(FLAGS_metrics_host),
                                                absl::GetFlag(FLAGS_metrics_port));
  if (!metrics.ok()) return Fail(metrics.status());
  auto& reconnects = prometheus::BuildCounter()
                         .Name("matid_bridge_connections_total")
                         .Help("Successful (re)connections, by broker")
                         .Register((*metrics)->registry());
  prometheus::Counter& local_connections = reconnects.Add({{"broker", "local"}});
  prometheus::Counter& cloud_connections = reconnects.Add({{"broker", "cloud"}});

  matid::BridgeOptions bridge_options;
  bridge_options.local_topic_filter = absl::GetFlag(FLAGS_local_topic);
  bridge_options.cloud_topic_template = absl::GetFlag(FLAGS_cloud_topic_template);
  bridge_options.batch_max_messages = absl::GetFlag(FLAGS_batch_max_messages);
  bridge_options.batch_max_bytes = absl::GetFlag(FLAGS_batch_max_bytes);
  bridge_options.max_publishes_per_second = absl::GetFlag(FLAGS_max_publishes_per_second);
  MqttCloudLink cloud_link;
  auto bridge =
      matid::Bridge::Create(bridge_options, spool->get(), &cloud_link, &(*metrics)->registry());
  if (!bridge.ok()) return Fail(bridge.status());
  matid::Bridge* bridge_ptr = bridge->get();

  matid::MqttOptions cloud_options;
  cloud_options.host = absl::GetFlag(FLAGS_cloud_endpoint);
  cloud_options.port = absl::GetFlag(FLAGS_cloud_port);
  cloud_options.client_id = absl::GetFlag(FLAGS_cloud_client_id);
  cloud_options.clean_session = true;  // the spool, not the session, holds our backlog
  cloud_options.log_prefix = "matid-bridge: cloud MQTT";
  if (!plaintext) {
    cloud_options.ca_file = absl::GetFlag(FLAGS_cloud_ca);
    cloud_options.cert_file = absl::GetFlag(FLAGS_cloud_cert);
    cloud_options.key_file = absl::GetFlag(FLAGS_cloud_key);
  }
  matid::MqttClient::Callbacks cloud_callbacks;
  cloud_callbacks.on_connection = [&, bridge_ptr](bool up, const std::string& reason) {
    if (up) cloud_connections.Increment();
    std::fprintf(stderr, "matid-bridge: cloud %s:%d %s%s\n", cloud_options.host.c_str(),
                 cloud_options.port,
                 up ? "connected" : "not connected: ", up ? "" : reason.c_str());
    bridge_ptr->OnCloudConnection(up);
  };
  cloud_callbacks.on_published = [bridge_ptr](int id) { bridge_ptr->OnCloudAck(id); };
  auto cloud = matid::MqttClient::Create(cloud_options, cloud_callbacks);
  if (!cloud.ok()) return Fail(cloud.status());
  cloud_link.set_client(cloud->get());

  matid::MqttOptions local_options;
  local_options.host = absl::GetFlag(FLAGS_local_host);
  local_options.port = absl::GetFlag(FLAGS_local_port);
  local_options.client_id = absl::GetFlag(FLAGS_local_client_id);
  local_options.clean_session = false;  // the broker keeps what arrives while we are away
  local_options.reconnect_max = absl::Seconds(5);
  local_options.log_prefix = "matid-bridge: local MQTT";
  matid::MqttClient::Callbacks local_callbacks;
  local_callbacks.on_connection = [&](bool up, const std::string& reason) {
    if (up) local_connections.Increment();
    std::fprintf(stderr, "matid-bridge: local broker %s:%d %s%s\n", local_options.host.c_str(),
                 local_options.port,
                 up ? "connected" : "not connected: ", up ? "" : reason.c_str());
  };
  local_callbacks.on_message = [bridge_ptr](const std::string& topic, absl::string_view payload) {
    absl::Status stored = bridge_ptr->OnLocalMessage(topic, payload);
    if (!stored.ok()) {
      // Not stored: exit before the PUBACK is written, so the broker keeps
      // the message for our next run. A supervisor restarts us.
      std::fprintf(stderr, "matid-bridge: FATAL: cannot spool a message: %s\n",
                   stored.ToString().c_str());
      _exit(75);
    }
  };
  auto local = matid::MqttClient::Create(local_options, local_callbacks);
  if (!local.ok()) return Fail(local.status());
  absl::Status subscribed = (*local)->Subscribe(absl::GetFlag(FLAGS_local_topic), 1);
  if (!subscribed.ok()) return Fail(subscribed);

  std::printf("matid-bridge: %s -> spool %s -> %s:%d, metrics_port=%d\n",
              absl::GetFlag(FLAGS_local_topic).c_str(), spool_options.path.c_str(),
              cloud_options.host.c_str(), cloud_options.port, (*metrics)->port());
  std::fflush(stdout);

  // Watchdog: a cloud that stays unreachable gets a plain warning with what
  // to check (a rejected client certificate often shows as a lost connection).
  std::atomic<bool> stopping{false};
  std::thread watchdog([&] {
    const absl::Duration warn_after = absl::Seconds(absl::GetFlag(FLAGS_cloud_warn_after_seconds));
    absl::Time down_since = absl::Now();
    absl::Time next_warning = down_since + warn_after;
    while (!stopping.load()) {
      absl::SleepFor(absl::Milliseconds(250));
      const absl::Time now = absl::Now();
      if (cloud_link.connected()) {
        down_since = now;
        next_warning = now + warn_after;
      } else if (now >= next_warning) {
        std::fprintf(stderr,
                     "matid-bridge: WARNING: cloud %s:%d unreachable for %.0f s; messages wait in "
                     "the spool. Check the endpoint and network, that --cloud_cert/--cloud_key "
                     "are a certificate the broker trusts (AWS IoT: registered, active, policy "
                     "attached) and that --cloud_ca is the broker's CA.\n",
                     cloud_options.host.c_str(), cloud_options.port,
                     absl::ToDoubleSeconds(now - down_since));
        next_warning = now + absl::Seconds(60);
      }
    }
  });

  stop_signals.Wait();
  stopping = true;
  watchdog.join();
  // Stop taking messages, then stop forwarding; the spool keeps the rest.
  local->reset();
  (*bridge)->Stop();
  cloud->reset();
  std::printf("matid-bridge: stopped\n");
  return 0;
}
