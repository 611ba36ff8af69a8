// The camera's Prometheus metrics: counters of frames captured, sent,
// classified, dropped, refused and retried, inspection and captured frames, stream
// reconnects, and the end-to-end latency histogram. Registered once; the
// pointers stay valid as long as the registry. Prometheus' counters are
// safe to increment from any thread.
#ifndef MATID_CLIENT_CAMERA_CAMERA_METRICS_H_
#define MATID_CLIENT_CAMERA_CAMERA_METRICS_H_

#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace matid {

// Each pointer is nullptr when no registry was given.
struct CameraMetrics {
  prometheus::Counter* captured = nullptr;
  prometheus::Counter* sent = nullptr;
  prometheus::Counter* classified = nullptr;
  prometheus::Counter* needs_inspection = nullptr;
  prometheus::Counter* dropped_queue_full = nullptr;
  prometheus::Counter* failed = nullptr;
  prometheus::Counter* inspection_write_failures = nullptr;
  prometheus::Counter* inspection_folder_full = nullptr;
  prometheus::Counter* capture_saved = nullptr;
  prometheus::Counter* capture_skipped_busy = nullptr;
  prometheus::Counter* capture_folder_full = nullptr;
  prometheus::Counter* capture_write_failures = nullptr;
  prometheus::Counter* reconnects = nullptr;
  prometheus::Counter* busy_retries = nullptr;
  prometheus::Histogram* latency = nullptr;
};

// `registry` may be nullptr (nothing registered).
CameraMetrics RegisterCameraMetrics(prometheus::Registry* registry);

}  // namespace matid

#endif  // MATID_CLIENT_CAMERA_CAMERA_METRICS_H_
