// matid-camera: frames from a camera, stream, file or folder -> matid-server
// (ClassifyStream) -> one JSON result per frame on the local MQTT broker.
#include <grpcpp/create_channel.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/camera/camera.h"
#include "client/camera/result_publisher.h"
#include "common/channel_credentials.h"
#include "common/client_tls_flags.h"
#include "common/log.h"
#include "common/malloc_tuning.h"
#include "common/metrics_endpoint.h"
#include "common/mutex_deadlock_detection.h"
#include "common/program_flags.h"
#include "common/result_topic.h"
#include "common/stop_signals.h"

ABSL_FLAG(std::string, source, "0",
          "V4L2 device index, RTSP/HTTP URL, video file, or folder of images.");
ABSL_FLAG(bool, loop, false, "Repeat a video file or folder forever.");
ABSL_FLAG(std::string, camera_id, "camera-1", "Camera id: in every message and the MQTT topic.");
ABSL_FLAG(std::string, server, "localhost:50051",
          "matid-server address: host:port, dns:///name:port (every address it resolves to) or "
          "ipv4:a:port,b:port; calls spread round-robin over the servers that are up.");
ABSL_FLAG(std::string, mqtt_host, "127.0.0.1", "Local MQTT broker host.");
ABSL_FLAG(int, mqtt_port, 1883, "Local MQTT broker port.");
ABSL_FLAG(std::string, mqtt_topic_template, std::string(matid::kDefaultResultTopicTemplate),
          "Topic results are published on; {camera_id} is replaced by --camera_id. The bridge's "
          "--local_topic must match it (the same template with + for {camera_id}).");
ABSL_FLAG(int, top_k, 3, "Predictions per result.");
ABSL_FLAG(int, max_in_flight, 4, "Frames sent to the server and not yet answered.");
ABSL_FLAG(int, max_pending, 8,
          "Captured frames waiting to be sent; the oldest is dropped beyond it.");
ABSL_FLAG(double, max_fps, 0, "Keep at most this many frames per second (0: all).");
ABSL_FLAG(int, every_nth_frame, 1, "Keep one frame in N.");
ABSL_FLAG(double, pace_fps, 0,
          "Read the source no faster than this (0: as fast as it gives frames).");
ABSL_FLAG(int64_t, max_frames, 0, "Stop after this many frames (0: no limit).");
ABSL_FLAG(std::string, roi, "", "Region of interest x,y,width,height (empty: whole frame).");
ABSL_FLAG(bool, shrink_frames, true,
          "Shrink each frame (after --roi) to the model's input size, learned from the server's "
          "Health, before encoding: the server then decodes and resizes far fewer pixels. "
          "Inspection images keep the whole ROI.");
ABSL_FLAG(int, jpeg_quality, 90, "JPEG quality for frames sent to the server (0: raw pixels).");
ABSL_FLAG(double, inspection_threshold, 0.6,
          "Top score under this marks the result needs_inspection.");
ABSL_FLAG(std::string, inspection_dir, "", "Save frames that need inspection here.");
ABSL_FLAG(int, inspection_max_files, 1000,
          "Keep at most this many frames in --inspection_dir; beyond it frames are counted "
          "(matid_camera_inspection_folder_full_total), not saved, until some are removed.");
ABSL_FLAG(int64_t, inspection_max_mb, 1024,
          "Keep at most this many megabytes in --inspection_dir, whatever was there before; "
          "beyond it frames are counted, not saved, until some are removed.");
ABSL_FLAG(std::string, capture_dir, "",
          "Save frames as training photos in --capture_dir/--capture_label/ (full resolution, "
          "JPEG), the folder-per-class layout `model_export prepare --source` reads.");
ABSL_FLAG(std::string, capture_label, "",
          "The class folder under --capture_dir for the frames saved (the part now on the line).");
ABSL_FLAG(int, capture_every, 1, "With --capture_dir: save one kept frame in N.");
ABSL_FLAG(int, capture_max_files, 1000,
          "Keep at most this many photos in the capture class folder; beyond it frames are "
          "counted (matid_camera_capture_folder_full_total), not saved.");
ABSL_FLAG(int64_t, capture_max_mb, 2048,
          "Keep at most this many megabytes in the capture class folder.");
ABSL_FLAG(int, max_outbox, 10000, "Results kept while the MQTT broker is unreachable.");
ABSL_FLAG(double, drain_seconds, 15,
          "At the end, how long to wait for the broker to acknowledge every result.");
ABSL_FLAG(std::string, metrics_host, "0.0.0.0", "Address /metrics listens on.");
ABSL_FLAG(int, metrics_port, 8081, "Prometheus /metrics port; 0 picks one; -1 turns it off.");

namespace {

absl::StatusOr<cv::Rect> ParseRoi(const std::string& text) {
  if (text.empty()) return cv::Rect();
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  int v[4];
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &v[0]) ||
      !absl::SimpleAtoi(parts[1], &v[1]) || !absl::SimpleAtoi(parts[2], &v[2]) ||
      !absl::SimpleAtoi(parts[3], &v[3]) || v[2] <= 0 || v[3] <= 0) {
    return absl::InvalidArgumentError("--roi must be x,y,width,height with positive size");
  }
  return cv::Rect(v[0], v[1], v[2], v[3]);
}

// The camera's options from the flags, checked before anything is opened.
absl::StatusOr<matid::CameraOptions> CameraOptionsFromFlags() {
  matid::CameraOptions options;
  options.camera_id = absl::GetFlag(FLAGS_camera_id);
  options.boot_id = matid::NewBootId();
  options.top_k = absl::GetFlag(FLAGS_top_k);
  options.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  options.max_pending = absl::GetFlag(FLAGS_max_pending);
  options.max_fps = absl::GetFlag(FLAGS_max_fps);
  options.every_nth_frame = absl::GetFlag(FLAGS_every_nth_frame);
  options.pace_fps = absl::GetFlag(FLAGS_pace_fps);
  options.max_frames = absl::GetFlag(FLAGS_max_frames);
  options.jpeg_quality = absl::GetFlag(FLAGS_jpeg_quality);
  options.shrink_to_model = absl::GetFlag(FLAGS_shrink_frames);
  options.inspection_threshold = absl::GetFlag(FLAGS_inspection_threshold);
  options.inspection_dir = absl::GetFlag(FLAGS_inspection_dir);
  options.inspection_max_files = absl::GetFlag(FLAGS_inspection_max_files);
  options.inspection_max_mb = absl::GetFlag(FLAGS_inspection_max_mb);
  options.capture.dir = absl::GetFlag(FLAGS_capture_dir);
  options.capture.label = absl::GetFlag(FLAGS_capture_label);
  options.capture.every = absl::GetFlag(FLAGS_capture_every);
  options.capture.max_files = absl::GetFlag(FLAGS_capture_max_files);
  options.capture.max_mb = absl::GetFlag(FLAGS_capture_max_mb);
  auto roi = ParseRoi(absl::GetFlag(FLAGS_roi));
  if (!roi.ok()) return roi.status();
  options.roi = *roi;

  absl::Status valid = matid::ValidateCameraOptions(options);
  if (!valid.ok()) return valid;
  return options;
}

// After the run: whether the broker took every result, and the counts.
void PrintSummary(const matid::CameraStats& stats, const absl::Status& status, bool drained) {
  if (!drained) matid::LogWarning("some results were not acknowledged by the broker");
  std::printf(
      "matid-camera: finished%s: %lld frames captured, %lld classified, %lld dropped (server "
      "behind), %lld refused\n",
      status.ok() ? "" : " with an error", static_cast<long long>(stats.captured),
      static_cast<long long>(stats.classified), static_cast<long long>(stats.dropped),
      static_cast<long long>(stats.failed));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  matid::ParseProgramFlags(
      argc, argv,
      "Streams camera frames to matid-server and publishes results to MQTT.\n"
      "Usage: matid-camera --source=0|URL|FILE|DIR --camera_id=ID [--server=host:port]");
  matid::TurnOffMutexDeadlockDetection();
  matid::TuneMallocForLargeBuffers();     // frames of hundreds of KiB, every frame
  const matid::StopSignals stop_signals;  // before any thread starts

  auto options = CameraOptionsFromFlags();
  if (!options.ok()) return matid::FailWith(options.status());

  auto source = matid::OpenFrameSource(absl::GetFlag(FLAGS_source), absl::GetFlag(FLAGS_loop));
  if (!source.ok()) return matid::FailWith(source.status());
  const std::string source_name = (*source)->description();
  auto metrics = matid::MetricsEndpoint::Create(absl::GetFlag(FLAGS_metrics_host),
                                                absl::GetFlag(FLAGS_metrics_port));
  if (!metrics.ok()) return matid::FailWith(metrics.status());

  const matid::ResultPublisherOptions publishing{
      .max_outbox = absl::GetFlag(FLAGS_max_outbox),
      .topic_template = absl::GetFlag(FLAGS_mqtt_topic_template)};
  const matid::MqttOptions mqtt =
      matid::LocalBrokerOptions(absl::GetFlag(FLAGS_mqtt_host), absl::GetFlag(FLAGS_mqtt_port),
                                "matid-camera-" + options->camera_id);
  auto publisher =
      matid::ResultPublisher::CreateForBroker(publishing, mqtt, &(*metrics)->registry());
  if (!publisher.ok()) return matid::FailWith(publisher.status());

  auto credentials = matid::ChannelCredentialsFromFlags();
  if (!credentials.ok()) return matid::FailWith(credentials.status());
  auto channel = matid::CreateServerChannel(absl::GetFlag(FLAGS_server), *credentials);
  matid::ResultPublisher* publisher_ptr = publisher->get();
  auto created = matid::Camera::Create(
      *options, *std::move(source), channel,
      [publisher_ptr](const matid::ResultMessage& m) { publisher_ptr->Publish(m); },
      &(*metrics)->registry());
  if (!created.ok()) return matid::FailWith(created.status());
  matid::Camera& camera = **created;

  std::printf("matid-camera: %s -> %s -> mqtt://%s:%d/%s (boot %s), metrics_port=%d\n",
              source_name.c_str(), absl::GetFlag(FLAGS_server).c_str(), mqtt.host.c_str(),
              mqtt.port, (*publisher)->TopicFor(options->camera_id).c_str(),
              options->boot_id.c_str(), (*metrics)->port());
  std::fflush(stdout);

  // A signal stops the camera; the main thread runs it.
  std::thread signals([&] {
    if (stop_signals.Wait() != 0) camera.Stop();  // 0: released, the camera ended by itself
  });
  absl::Status status = camera.Run();
  const bool drained = (*publisher)->Drain(absl::Seconds(absl::GetFlag(FLAGS_drain_seconds)));
  PrintSummary(camera.stats(), status, drained);
  stop_signals.Release();
  signals.join();
  if (!status.ok()) return matid::FailWith(status);
  return drained ? 0 : 3;
}
