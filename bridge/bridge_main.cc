// matid-bridge: local MQTT broker -> SQLite spool -> AWS IoT Core (MQTT over
// mutual TLS). Parses flags into BridgeServiceOptions, starts the service,
// runs until SIGTERM/SIGINT, stops it.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "bridge/bridge_service.h"
#include "common/log.h"
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
ABSL_FLAG(std::string, local_events_topic, "matid/+/events",
          "Topic filter of model events (matid-server --events_mqtt_host), + for the box id; "
          "empty: none are forwarded.");
ABSL_FLAG(std::string, cloud_events_topic_template, matid::kDefaultEventTopicTemplate,
          "Cloud topic of model events; {box_id} is replaced.");
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

int main(int argc, char** argv) {
  matid::ParseProgramFlags(
      argc, argv,
      "Forwards camera results from the local MQTT broker to AWS IoT Core, durably.\n"
      "Usage: matid-bridge --cloud_endpoint=HOST --cloud_ca=CA --cloud_cert=CERT --cloud_key=KEY");
  matid::TurnOffMutexDeadlockDetection();
  const matid::StopSignals stop_signals;  // before any thread starts

  matid::BridgeServiceOptions options;
  options.spool.path = absl::GetFlag(FLAGS_spool_path);
  options.spool.max_bytes = absl::GetFlag(FLAGS_spool_max_mb) << 20;
  options.spool.max_age = absl::Hours(absl::GetFlag(FLAGS_spool_max_age_hours));
  options.spool.sync_full = absl::GetFlag(FLAGS_spool_sync_full);
  options.bridge.local_topic_filter = absl::GetFlag(FLAGS_local_topic);
  options.bridge.cloud_topic_template = absl::GetFlag(FLAGS_cloud_topic_template);
  options.bridge.local_events_filter = absl::GetFlag(FLAGS_local_events_topic);
  options.bridge.cloud_events_topic_template = absl::GetFlag(FLAGS_cloud_events_topic_template);
  options.bridge.batch_max_messages = absl::GetFlag(FLAGS_batch_max_messages);
  options.bridge.batch_max_bytes = absl::GetFlag(FLAGS_batch_max_bytes);
  options.bridge.max_publishes_per_second = absl::GetFlag(FLAGS_max_publishes_per_second);
  options.local.host = absl::GetFlag(FLAGS_local_host);
  options.local.port = absl::GetFlag(FLAGS_local_port);
  options.local.client_id = absl::GetFlag(FLAGS_local_client_id);
  options.local.reconnect_max = absl::Seconds(5);
  options.local.log_prefix = "local MQTT";
  options.cloud.host = absl::GetFlag(FLAGS_cloud_endpoint);
  options.cloud.port = absl::GetFlag(FLAGS_cloud_port);
  options.cloud.client_id = absl::GetFlag(FLAGS_cloud_client_id);
  options.cloud.ca_file = absl::GetFlag(FLAGS_cloud_ca);
  options.cloud.cert_file = absl::GetFlag(FLAGS_cloud_cert);
  options.cloud.key_file = absl::GetFlag(FLAGS_cloud_key);
  options.cloud.log_prefix = "cloud MQTT";
  options.cloud_plaintext = absl::GetFlag(FLAGS_cloud_insecure_plaintext);
  options.metrics_host = absl::GetFlag(FLAGS_metrics_host);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.cloud_warn_after = absl::Seconds(absl::GetFlag(FLAGS_cloud_warn_after_seconds));
  options.on_spool_failure = [](const absl::Status& status) {
    // Exit before the message is acknowledged, so the broker keeps it for
    // the next run (EX_TEMPFAIL; a supervisor restarts us).
    matid::LogError("cannot spool a message, exiting: %s", status.ToString());
    _exit(75);
  };

  auto service = matid::BridgeService::Create(options);
  if (!service.ok()) return matid::FailWith(service.status());
  std::printf("matid-bridge: %s%s%s -> spool %s -> %s:%d, metrics_port=%d\n",
              options.bridge.local_topic_filter.c_str(),
              options.bridge.local_events_filter.empty() ? "" : " and ",
              options.bridge.local_events_filter.c_str(), options.spool.path.c_str(),
              options.cloud.host.c_str(), options.cloud.port, (*service)->metrics_port());
  std::fflush(stdout);

  stop_signals.Wait();
  (*service)->Stop();
  std::printf("matid-bridge: stopped\n");
  return 0;
}
