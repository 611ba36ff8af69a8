// matid-sparkplug: camera results from the local MQTT broker -> SQLite
// spool -> the plant's MQTT server as a Sparkplug B 3.0 edge node. Parses
// flags into SparkplugNodeOptions, starts the node, runs until
// SIGTERM/SIGINT, stops it.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "common/channel_credentials.h"
#include "common/client_tls_flags.h"
#include "common/file_contents.h"
#include "common/log.h"
#include "common/mutex_deadlock_detection.h"
#include "common/program_flags.h"
#include "common/result_topic.h"
#include "common/stop_signals.h"
#include "sparkplug/sparkplug_node.h"

ABSL_FLAG(std::string, sparkplug_group, "matid", "Sparkplug group id (the line or area).");
ABSL_FLAG(std::string, sparkplug_node, "",
          "Sparkplug edge node id (this box); required. Cameras are its devices.");
ABSL_FLAG(std::string, primary_host_id, "",
          "The primary host application's id (Ignition: its MQTT Engine's): births wait for "
          "its STATE online, results are held while it is offline. Empty: none.");
ABSL_FLAG(int, device_timeout_seconds, 60,
          "A camera without a result for this long gets a DDEATH; its next result a DBIRTH.");
ABSL_FLAG(int, max_cameras, 256, "Cameras one node reports; results of more are dead letters.");
ABSL_FLAG(std::string, plant_host, "", "The plant's MQTT server (Sparkplug); required.");
ABSL_FLAG(int, plant_port, 1883, "The plant's MQTT server port (8883 for TLS, usually).");
ABSL_FLAG(std::string, plant_client_id, "",
          "MQTT client id at the plant server (default: the node id).");
ABSL_FLAG(std::string, plant_ca, "", "CA file: TLS to the plant server (plain TCP without it).");
ABSL_FLAG(std::string, plant_cert, "", "Client certificate file, for mutual TLS.");
ABSL_FLAG(std::string, plant_key, "", "Client private key file, for mutual TLS.");
ABSL_FLAG(std::string, plant_username, "", "MQTT username at the plant server.");
ABSL_FLAG(std::string, plant_password_file, "",
          "File holding the MQTT password (first line), so it is not on the command line.");
ABSL_FLAG(std::string, marker_topic, "matid/sparkplug/{node}/delivered",
          "QoS 1 delivery marker after each batch of DDATA (outside spBv1.0/).");
ABSL_FLAG(int, batch_max_messages, 50, "DDATA messages per delivery marker.");
ABSL_FLAG(std::string, local_host, "127.0.0.1", "Local MQTT broker host.");
ABSL_FLAG(int, local_port, 1883, "Local MQTT broker port.");
ABSL_FLAG(std::string, local_topic, matid::ResultTopicFilter(matid::kDefaultResultTopicTemplate),
          "Camera results on the local broker.");
ABSL_FLAG(std::string, local_client_id, "matid-sparkplug",
          "Client id at the local broker (persistent session: results wait there while we are "
          "away).");
ABSL_FLAG(std::string, server, "localhost:50051",
          "matid-server, asked for its model and state (Health); empty: not asked.");
ABSL_FLAG(int, health_interval_seconds, 5, "How often the server's Health is asked.");
ABSL_FLAG(std::string, spool_path, "matid-sparkplug-spool.db", "SQLite spool file.");
ABSL_FLAG(int64_t, spool_max_mb, 256, "Spool size bound; the oldest results are dropped beyond.");
ABSL_FLAG(double, spool_max_age_hours, 168, "Results older than this are dropped.");
ABSL_FLAG(std::string, metrics_host, "0.0.0.0", "Address /metrics listens on.");
ABSL_FLAG(int, metrics_port, 8084, "Prometheus /metrics port; 0 picks one; -1 turns it off.");

namespace {

absl::StatusOr<matid::MqttOptions> PlantFromFlags() {
  matid::MqttOptions plant;
  plant.host = absl::GetFlag(FLAGS_plant_host);
  plant.port = absl::GetFlag(FLAGS_plant_port);
  plant.client_id = absl::GetFlag(FLAGS_plant_client_id);
  if (plant.client_id.empty()) plant.client_id = absl::GetFlag(FLAGS_sparkplug_node);
  plant.ca_file = absl::GetFlag(FLAGS_plant_ca);
  plant.cert_file = absl::GetFlag(FLAGS_plant_cert);
  plant.key_file = absl::GetFlag(FLAGS_plant_key);
  plant.username = absl::GetFlag(FLAGS_plant_username);
  plant.reconnect_max = absl::Seconds(5);
  const std::string password_file = absl::GetFlag(FLAGS_plant_password_file);
  if (!password_file.empty()) {
    absl::StatusOr<std::string> password = matid::ReadFileContents(password_file);
    if (!password.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--plant_password_file: ", password.status().message()));
    }
    plant.password = std::string(absl::StripTrailingAsciiWhitespace(
        absl::string_view(*password).substr(0, password->find('\n'))));
  }
  return plant;
}

absl::StatusOr<matid::sparkplug::SparkplugNodeOptions> OptionsFromFlags() {
  matid::sparkplug::SparkplugNodeOptions options;
  options.session.group_id = absl::GetFlag(FLAGS_sparkplug_group);
  options.session.edge_node_id = absl::GetFlag(FLAGS_sparkplug_node);
  options.session.device_timeout = absl::Seconds(absl::GetFlag(FLAGS_device_timeout_seconds));
  options.session.max_cameras = absl::GetFlag(FLAGS_max_cameras);
  options.primary_host_id = absl::GetFlag(FLAGS_primary_host_id);
  absl::StatusOr<matid::MqttOptions> plant = PlantFromFlags();
  if (!plant.ok()) return plant.status();
  options.plant = *std::move(plant);
  options.local.host = absl::GetFlag(FLAGS_local_host);
  options.local.port = absl::GetFlag(FLAGS_local_port);
  options.local.client_id = absl::GetFlag(FLAGS_local_client_id);
  options.local.reconnect_max = absl::Seconds(5);
  options.local.log_prefix = "local MQTT";
  options.local_topic_filter = absl::GetFlag(FLAGS_local_topic);
  options.marker_topic = absl::GetFlag(FLAGS_marker_topic);
  options.batch_max_messages = absl::GetFlag(FLAGS_batch_max_messages);
  options.spool.path = absl::GetFlag(FLAGS_spool_path);
  options.spool.max_bytes = absl::GetFlag(FLAGS_spool_max_mb) << 20;
  options.spool.max_age = absl::Hours(absl::GetFlag(FLAGS_spool_max_age_hours));
  options.health_interval = absl::Seconds(absl::GetFlag(FLAGS_health_interval_seconds));
  options.metrics_host = absl::GetFlag(FLAGS_metrics_host);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  if (!absl::GetFlag(FLAGS_server).empty()) {
    auto credentials = matid::ChannelCredentialsFromFlags();
    if (!credentials.ok()) return credentials.status();
    options.server = matid::CreateServerChannel(absl::GetFlag(FLAGS_server), *credentials);
  }
  options.on_spool_failure = [](const absl::Status& status) {
    // Exit before the result is acknowledged, so the broker keeps it for
    // the next run (EX_TEMPFAIL; a supervisor restarts us).
    matid::LogError("cannot spool a result, exiting: %s", status.ToString());
    _exit(75);
  };
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  matid::ParseProgramFlags(
      argc, argv,
      "Publishes camera results to the plant's MQTT server as a Sparkplug B 3.0 edge node.\n"
      "Usage: matid-sparkplug --sparkplug_node=BOX --plant_host=HOST [--plant_ca=CA ...]");
  matid::TurnOffMutexDeadlockDetection();
  const matid::StopSignals stop_signals;  // before any thread starts

  absl::StatusOr<matid::sparkplug::SparkplugNodeOptions> options = OptionsFromFlags();
  if (!options.ok()) return matid::FailWith(options.status());
  auto node = matid::sparkplug::SparkplugNode::Create(*options);
  if (!node.ok()) return matid::FailWith(node.status());
  std::printf("matid-sparkplug: %s -> spool %s -> spBv1.0/%s/+/%s at %s:%d, metrics_port=%d\n",
              options->local_topic_filter.c_str(), options->spool.path.c_str(),
              options->session.group_id.c_str(), options->session.edge_node_id.c_str(),
              options->plant.host.c_str(), options->plant.port, (*node)->metrics_port());
  std::fflush(stdout);

  stop_signals.Wait();
  (*node)->Stop();
  std::printf("matid-sparkplug: stopped\n");
  return 0;
}
