#include "client/camera/camera_metrics.h"

#include "common/metric_families.h"
#include "common/metrics_endpoint.h"

namespace matid {

CameraMetrics RegisterCameraMetrics(prometheus::Registry* registry) {
  CameraMetrics metrics;
  if (registry == nullptr) return metrics;
  auto counter = [&](const char* name, const char* help) {
    return AddCounter(*registry, name, help);
  };
  metrics.captured =
      counter("matid_camera_frames_captured_total", "Frames read from the source and kept");
  metrics.sent = counter("matid_camera_frames_sent_total",
                         "Frames written to the server stream (resends included)");
  metrics.classified = counter("matid_camera_frames_classified_total", "Frames with a result");
  metrics.needs_inspection =
      counter("matid_camera_needs_inspection_total", "Results under the inspection threshold");
  metrics.dropped_queue_full =
      counter("matid_camera_frames_dropped_total",
              "Oldest unsent frames dropped because the server was behind");
  metrics.failed =
      counter("matid_camera_frames_failed_total", "Frames the server refused (bad image)");
  metrics.busy_retries =
      counter("matid_camera_busy_retries_total",
              "Frames the server answered busy (queue full, draining), sent again after a backoff");
  metrics.inspection_write_failures =
      counter("matid_camera_inspection_write_failures_total",
              "Frames needing inspection that could not be written to --inspection_dir");
  metrics.inspection_folder_full =
      counter("matid_camera_inspection_folder_full_total",
              "Frames needing inspection not saved: --inspection_dir held --inspection_max_files");
  metrics.capture_saved = counter("matid_camera_capture_saved_total",
                                  "Frames saved as training photos in --capture_dir");
  metrics.capture_skipped_busy = counter(
      "matid_camera_capture_skipped_total",
      "Frames chosen for --capture_dir not saved: the writer was behind (never waited for)");
  metrics.capture_folder_full =
      counter("matid_camera_capture_folder_full_total",
              "Frames not saved: --capture_dir's class folder held --capture_max_files/_mb");
  metrics.capture_write_failures = counter("matid_camera_capture_write_failures_total",
                                           "Frames for --capture_dir that could not be written");
  metrics.reconnects = counter("matid_camera_stream_reconnects_total",
                               "Times the stream to the server was restarted");
  metrics.latency = &prometheus::BuildHistogram()
                         .Name("matid_camera_end_to_end_latency_seconds")
                         .Help("From frame capture to its result at the camera")
                         .Register(*registry)
                         .Add({}, LatencyBucketsSeconds());
  return metrics;
}

}  // namespace matid
