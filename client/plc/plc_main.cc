// matid-plc: a station PLC triggers an inspection over Modbus TCP; the box
// captures one frame, classifies it with matid-server and writes OK/NG, the
// class and the score into the PLC's registers (docs/plc.md), and
// publishes the result, with the trigger's part id, to the local MQTT broker
// like matid-camera.
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/camera/result_publisher.h"
#include "client/plc/modbus_server.h"
#include "client/plc/plc_station.h"
#include "common/channel_credentials.h"
#include "common/client_tls_flags.h"
#include "common/file_contents.h"
#include "common/log.h"
#include "common/metrics_endpoint.h"
#include "common/program_flags.h"
#include "common/result_topic.h"
#include "common/stop_signals.h"

ABSL_FLAG(std::string, modbus_host, "127.0.0.1",
          "IPv4 address the Modbus TCP server binds (0.0.0.0: every interface; then set "
          "--allowed_peers). Modbus has no authentication.");
ABSL_FLAG(int, modbus_port, 502, "Modbus TCP port.");
ABSL_FLAG(std::string, allowed_peers, "",
          "Comma-separated IPv4 addresses of the PLCs allowed to connect (empty: any).");
ABSL_FLAG(int, modbus_max_connections, 4, "Modbus connections open at once; more are refused.");
ABSL_FLAG(std::string, accepted_classes, "",
          "Comma-separated class labels that are OK for recipe 0 (the default recipe).");
ABSL_FLAG(std::string, recipes, "",
          "JSON file of further recipes: {\"recipes\": [{\"id\": 1, \"name\": \"...\", "
          "\"accepted\": [\"label\", ...]}]}.");
ABSL_FLAG(std::string, source, "0",
          "Frames: V4L2 device index, RTSP/HTTP URL, video file, or folder of images; one frame "
          "is taken per trigger.");
ABSL_FLAG(bool, loop, false, "Repeat a video file or folder forever.");
ABSL_FLAG(std::string, server, "localhost:50051", "matid-server address.");
ABSL_FLAG(std::string, station_id, "plc-station-1",
          "Station id: the camera_id of its result messages and in their MQTT topic.");
ABSL_FLAG(int, inspection_timeout_ms, 2000,
          "Classify deadline; past it the PLC reads error code 2 (timeout).");
ABSL_FLAG(double, inspection_threshold, 0.6,
          "Top score under this sets needs-inspection, and the result is NG.");
ABSL_FLAG(int, top_k, 3, "Predictions per result message.");
ABSL_FLAG(int, jpeg_quality, 90, "JPEG quality for frames sent to the server (0: raw pixels).");
ABSL_FLAG(std::string, mqtt_host, "127.0.0.1", "Local MQTT broker host.");
ABSL_FLAG(int, mqtt_port, 1883, "Local MQTT broker port.");
ABSL_FLAG(std::string, mqtt_topic_template, std::string(matid::kDefaultResultTopicTemplate),
          "Topic results are published on; {camera_id} is replaced by --station_id.");
ABSL_FLAG(int, max_outbox, 10000, "Results kept while the MQTT broker is unreachable.");
ABSL_FLAG(std::string, metrics_host, "0.0.0.0", "Address /metrics listens on.");
ABSL_FLAG(int, metrics_port, 8083, "Prometheus /metrics port; 0 picks one; -1 turns it off.");

namespace {

std::vector<std::string> CommaList(const std::string& text) {
  return absl::StrSplit(text, ',', absl::SkipWhitespace());
}

absl::StatusOr<matid::plc::Recipes> RecipesFromFlags() {
  std::string json;
  if (const std::string path = absl::GetFlag(FLAGS_recipes); !path.empty()) {
    absl::StatusOr<std::string> contents = matid::ReadFileContents(path);
    if (!contents.ok())
      return absl::InvalidArgumentError(absl::StrCat("--recipes: ", contents.status().message()));
    json = *std::move(contents);
  }
  return matid::plc::Recipes::Create(CommaList(absl::GetFlag(FLAGS_accepted_classes)), json);
}

absl::StatusOr<matid::plc::InspectorOptions> InspectorOptionsFromFlags() {
  const int timeout_ms = absl::GetFlag(FLAGS_inspection_timeout_ms);
  const int quality = absl::GetFlag(FLAGS_jpeg_quality);
  const int top_k = absl::GetFlag(FLAGS_top_k);
  if (timeout_ms < 1 || timeout_ms > 60000) {
    return absl::InvalidArgumentError("--inspection_timeout_ms must be in 1..60000");
  }
  if (quality < 0 || quality > 100) {
    return absl::InvalidArgumentError("--jpeg_quality must be in 0..100");
  }
  if (top_k < 1 || top_k > 100) return absl::InvalidArgumentError("--top_k must be in 1..100");
  return matid::plc::InspectorOptions{top_k, quality, absl::Milliseconds(timeout_ms)};
}

absl::StatusOr<matid::plc::StationOptions> StationOptionsFromFlags() {
  const double threshold = absl::GetFlag(FLAGS_inspection_threshold);
  if (!(threshold >= 0 && threshold <= 1)) {
    return absl::InvalidArgumentError("--inspection_threshold must be in [0, 1]");
  }
  if (absl::GetFlag(FLAGS_station_id).empty()) {
    return absl::InvalidArgumentError("--station_id must not be empty");
  }
  return matid::plc::StationOptions{absl::GetFlag(FLAGS_station_id), matid::NewBootId(), threshold};
}

matid::plc::ModbusServerOptions ModbusOptionsFromFlags() {
  const std::vector<std::string> peers = CommaList(absl::GetFlag(FLAGS_allowed_peers));
  return {absl::GetFlag(FLAGS_modbus_host), absl::GetFlag(FLAGS_modbus_port),
          std::set<std::string>(peers.begin(), peers.end()),
          absl::GetFlag(FLAGS_modbus_max_connections)};
}

absl::StatusOr<std::unique_ptr<matid::ResultPublisher>> PublisherFromFlags(
    prometheus::Registry* registry) {
  const matid::ResultPublisherOptions publishing{
      .max_outbox = absl::GetFlag(FLAGS_max_outbox),
      .topic_template = absl::GetFlag(FLAGS_mqtt_topic_template)};
  return matid::ResultPublisher::CreateForBroker(
      publishing,
      matid::LocalBrokerOptions(absl::GetFlag(FLAGS_mqtt_host), absl::GetFlag(FLAGS_mqtt_port),
                                "matid-plc-" + absl::GetFlag(FLAGS_station_id)),
      registry);
}

}  // namespace

int main(int argc, char** argv) {
  matid::ParseProgramFlags(
      argc, argv,
      "Serves a PLC's inspection triggers over Modbus TCP: one frame per trigger, classified by "
      "matid-server, OK/NG and the class written to the PLC's registers (docs/plc.md).\n"
      "Usage: matid-plc --source=0|URL|FILE|DIR --accepted_classes=A,B [--modbus_port=502]");
  const matid::StopSignals stop_signals;  // before any thread starts

  auto recipes = RecipesFromFlags();
  if (!recipes.ok()) return matid::FailWith(recipes.status());
  auto inspecting = InspectorOptionsFromFlags();
  if (!inspecting.ok()) return matid::FailWith(inspecting.status());
  auto station_options = StationOptionsFromFlags();
  if (!station_options.ok()) return matid::FailWith(station_options.status());
  const matid::plc::ModbusServerOptions modbus_options = ModbusOptionsFromFlags();
  if (absl::Status valid = matid::plc::ValidateModbusServerOptions(modbus_options); !valid.ok()) {
    return matid::FailWith(valid);
  }
  auto source = matid::OpenFrameSource(absl::GetFlag(FLAGS_source), absl::GetFlag(FLAGS_loop));
  if (!source.ok()) return matid::FailWith(source.status());
  auto metrics = matid::MetricsEndpoint::Create(absl::GetFlag(FLAGS_metrics_host),
                                                absl::GetFlag(FLAGS_metrics_port));
  if (!metrics.ok()) return matid::FailWith(metrics.status());
  auto publisher = PublisherFromFlags(&(*metrics)->registry());
  if (!publisher.ok()) return matid::FailWith(publisher.status());
  auto credentials = matid::ChannelCredentialsFromFlags();
  if (!credentials.ok()) return matid::FailWith(credentials.status());

  auto inspector = std::make_unique<matid::plc::Inspector>(
      *inspecting, *std::move(source),
      matid::CreateServerChannel(absl::GetFlag(FLAGS_server), *credentials));
  matid::ResultPublisher* publisher_ptr = publisher->get();
  matid::plc::PlcStation station(
      *station_options, *std::move(recipes), std::move(inspector),
      [publisher_ptr](const matid::ResultMessage& m) { publisher_ptr->Publish(m); },
      &(*metrics)->registry());
  auto modbus = matid::plc::ModbusServer::Create(modbus_options, &station);
  if (!modbus.ok()) return matid::FailWith(modbus.status());
  station.Start();
  (*modbus)->Start();
  std::printf("matid-plc: modbus://%s:%d -> %s -> mqtt://%s:%d/%s, metrics_port=%d\n",
              absl::GetFlag(FLAGS_modbus_host).c_str(), absl::GetFlag(FLAGS_modbus_port),
              absl::GetFlag(FLAGS_server).c_str(), absl::GetFlag(FLAGS_mqtt_host).c_str(),
              absl::GetFlag(FLAGS_mqtt_port),
              (*publisher)->TopicFor(station_options->station_id).c_str(), (*metrics)->port());
  std::fflush(stdout);

  stop_signals.Wait();
  (*modbus)->Stop();  // no more triggers
  station.Stop();     // after the inspection in progress
  const bool drained = (*publisher)->Drain(absl::Seconds(10));
  if (!drained) matid::LogWarning("some results were not acknowledged by the broker");
  return drained ? 0 : 3;
}
