// The server's Prometheus metrics (prometheus-cpp): one registry, families
// built once, handles kept for the hot path, and an HTTP endpoint serving
// /metrics. Every Record*/Set* method is safe from any thread.
#ifndef MATID_SERVER_CORE_METRICS_H_
#define MATID_SERVER_CORE_METRICS_H_

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/metrics_endpoint.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/backend/model_info.h"
#include "server/core/model_version_state.h"

namespace matid {

struct MetricsOptions {
  // Where /metrics listens. Port 0 picks a free port (see port()); a
  // negative port serves no endpoint (metrics still recorded, for tests).
  std::string bind_address = "0.0.0.0";
  int port = 8080;
};

// Top-1 prediction counters of one model, one per label, made once so the
// hot path increments a handle. Copyable; Increment is safe from any thread.
class LabelCounters {
 public:
  LabelCounters() = default;
  explicit LabelCounters(std::vector<prometheus::Counter*> counters)
      : counters_(std::move(counters)) {}
  void Increment(int index) const {
    if (index >= 0 && index < static_cast<int>(counters_.size())) counters_[index]->Increment();
  }

 private:
  std::vector<prometheus::Counter*> counters_;
};

// The matid_shadow_* handles of one model's shadow comparison (see
// shadow_tap.h), made once when the shadow is set up. Copyable; every method
// is safe from any thread. Default-constructed: records nothing.
class ShadowCounters {
 public:
  ShadowCounters() = default;
  void Compared(bool agree, int primary_label, int shadow_label, double score_difference,
                absl::Duration shadow_latency) const;
  void Skipped(const std::string& reason) const;
  // A disagreeing image: "saved", or why not (folder_full, writer_busy, write_failed).
  void Frame(const std::string& result) const;

 private:
  friend class ServerMetrics;
  std::string model_;
  std::string shadow_version_;
  std::vector<std::string> labels_;
  prometheus::Counter* compared_ = nullptr;
  prometheus::Counter* agreements_ = nullptr;
  prometheus::Histogram* score_difference_ = nullptr;
  prometheus::Histogram* latency_ = nullptr;
  prometheus::Family<prometheus::Counter>* flips_ = nullptr;
  prometheus::Family<prometheus::Counter>* skipped_ = nullptr;
  prometheus::Family<prometheus::Counter>* frames_ = nullptr;
};

class ServerMetrics {
 public:
  static absl::StatusOr<std::unique_ptr<ServerMetrics>> Create(const MetricsOptions& options);

  // Port /metrics listens on, or -1 when not serving.
  int port() const { return endpoint_->port(); }
  prometheus::Registry& registry() { return endpoint_->registry(); }

  // One finished RPC (for ClassifyStream: one finished frame).
  void RecordRequest(absl::string_view rpc, absl::StatusCode code, absl::Duration elapsed);
  // One unary RPC that ended before its answer was sent (see
  // cancel_counting_reactor.h); it is also counted by RecordRequest.
  void RecordCancelled(absl::string_view rpc);
  // One image's outcome, whichever RPC carried it; a refusal is also counted
  // by its reason (see refusal.h).
  void RecordImage(const absl::Status& status);
  // A refusal of a whole request (not serving, too many batch items...).
  void RecordRefusal(const absl::Status& status);
  void RecordPreprocess(absl::Duration elapsed);
  void RecordQueueWait(absl::Duration waited);
  void RecordBatch(int batch_size, absl::Duration inference);
  // matid_predictions_total{model, label} handles for one model's labels.
  LabelCounters PredictionCounters(const ModelInfo& model);
  // Adds `delta` to the queue depth summed over every loaded version.
  void AddQueueDepth(int delta);
  void SetQueueCapacity(int capacity);
  void AddInFlight(int delta);
  // matid_model_info for a loaded version: set while loaded, removed after.
  void SetModelLoaded(const ModelIdentity& model, bool loaded);
  // matid_model_loads_total{model, version, result="ok"|"failed"}.
  void RecordModelLoad(const std::string& model, const std::string& version, bool ok);
  // matid_model_events_total{model, type, trigger}: promotions, rollbacks
  // and closed rollback windows (see common/event_message.h).
  void RecordModelEvent(const std::string& model, const std::string& type,
                        const std::string& trigger);
  // matid_model_version_state{model, version, state}: 1 for `state`, 0 for
  // the other states; an empty `state` removes the version's series.
  void SetModelVersionState(const std::string& model, const std::string& version,
                            absl::string_view state);
  void SetServing(bool serving);
  // matid_shadow_* handles for `shadow_version` of `model` shadowing its
  // default version.
  ShadowCounters ShadowCountersFor(const ModelInfo& model, const std::string& shadow_version);

 private:
  explicit ServerMetrics(std::unique_ptr<MetricsEndpoint> endpoint);
  // The constructor's registrations, by subsystem.
  void RegisterRequestMetrics(prometheus::Registry& registry);
  void RegisterBatchingMetrics(prometheus::Registry& registry);
  void RegisterModelMetrics(prometheus::Registry& registry);
  void RegisterShadowMetrics(prometheus::Registry& registry);

  // Constant after construction (families and handles are thread-safe).
  std::unique_ptr<MetricsEndpoint> endpoint_;

  // Counters of one family for each status code, looked up once: the hot
  // path loads a pointer instead of hashing labels under the family's mutex.
  // Family::Add returns the same counter for the same labels, so two threads
  // filling one slot at once store the same pointer.
  class CountersByCode {
   public:
    CountersByCode(prometheus::Family<prometheus::Counter>* family,
                   std::map<std::string, std::string> labels)
        : family_(family), labels_(std::move(labels)) {}
    prometheus::Counter& operator[](absl::StatusCode code);

   private:
    prometheus::Family<prometheus::Counter>* const family_;
    const std::map<std::string, std::string> labels_;
    std::array<std::atomic<prometheus::Counter*>, 17> by_code_{};  // canonical codes 0..16
  };

  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* images_;
  // matid_requests_total by code for the classifying RPCs (both APIs);
  // matid_images_total by code.
  std::map<std::string, std::unique_ptr<CountersByCode>, std::less<>> requests_by_rpc_;
  // matid_requests_cancelled_total for the unary classifying RPCs.
  std::map<std::string, prometheus::Counter*, std::less<>> cancelled_by_rpc_;
  std::unique_ptr<CountersByCode> images_by_code_;
  prometheus::Family<prometheus::Counter>* refusals_;
  // matid_refusals_total for each reason of kRefusalReasons.
  std::map<std::string, prometheus::Counter*, std::less<>> refusals_by_reason_;
  prometheus::Family<prometheus::Histogram>* request_duration_;
  // The classifying RPCs' duration histograms, made once so the hot path does not
  // build bucket lists or look families up.
  std::map<std::string, prometheus::Histogram*, std::less<>> request_duration_by_rpc_;
  prometheus::Histogram* preprocess_duration_;
  prometheus::Histogram* queue_wait_;
  prometheus::Histogram* inference_duration_;
  prometheus::Histogram* batch_size_;
  prometheus::Counter* batches_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* queue_capacity_;
  prometheus::Gauge* in_flight_;
  prometheus::Gauge* serving_;
  prometheus::Family<prometheus::Counter>* predictions_;
  prometheus::Family<prometheus::Gauge>* model_info_;
  prometheus::Family<prometheus::Counter>* model_loads_;
  prometheus::Family<prometheus::Counter>* model_events_;
  prometheus::Family<prometheus::Gauge>* model_version_state_;
  prometheus::Family<prometheus::Counter>* shadow_compared_;
  prometheus::Family<prometheus::Counter>* shadow_agreements_;
  prometheus::Family<prometheus::Counter>* shadow_flips_;
  prometheus::Family<prometheus::Counter>* shadow_skipped_;
  prometheus::Family<prometheus::Counter>* shadow_frames_;
  prometheus::Family<prometheus::Histogram>* shadow_score_difference_;
  prometheus::Family<prometheus::Histogram>* shadow_latency_;
};

}  // namespace matid

#endif  // MATID_SERVER_CORE_METRICS_H_
