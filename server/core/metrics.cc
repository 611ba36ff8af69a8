#include "server/core/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/core/refusal.h"

namespace matid {
namespace {

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& registry,
                                                       const std::string& name,
                                                       const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& registry,
                                                   const std::string& name,
                                                   const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Histogram>& HistogramFamily(prometheus::Registry& registry,
                                                           const std::string& name,
                                                           const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Create(
    const MetricsOptions& options) {
  auto endpoint = MetricsEndpoint::Create(options.bind_address, options.port);
  if (!endpoint.ok()) return endpoint.status();
  return std::unique_ptr<ServerMetrics>(new ServerMetrics(*std::move(endpoint)));
}

ServerMetrics::ServerMetrics(std::unique_ptr<MetricsEndpoint> endpoint)
    : endpoint_(std::move(endpoint)) {
  prometheus::Registry& registry = endpoint_->registry();
  RegisterRequestMetrics(registry);
  RegisterBatchingMetrics(registry);
  RegisterModelMetrics(registry);
  RegisterShadowMetrics(registry);
}

// Per RPC and per image: counts by status code and reason, latency,
// cancellations.
void ServerMetrics::RegisterRequestMetrics(prometheus::Registry& r) {
  requests_ = &CounterFamily(r, "matid_requests_total",
                             "Finished RPCs (ClassifyStream: frames) by rpc and gRPC status code");
  images_ =
      &CounterFamily(r, "matid_images_total", "Images classified or refused, by gRPC status code");
  images_by_code_ = std::make_unique<CountersByCode>(images_, std::map<std::string, std::string>{});
  refusals_ = &CounterFamily(r, "matid_refusals_total",
                             "Images and requests refused or dropped unrun, by reason");
  for (absl::string_view reason : kRefusalReasons) {
    refusals_by_reason_.emplace(reason, &refusals_->Add({{"reason", std::string(reason)}}));
  }
  request_duration_ =
      &HistogramFamily(r, "matid_request_duration_seconds",
                       "Server-side time from receiving a request (stream: frame) to its answer");
  auto& cancelled = CounterFamily(r, "matid_requests_cancelled_total",
                                  "Unary RPCs that ended before their answer was sent: the client "
                                  "cancelled, its deadline passed or its connection dropped");
  for (const char* rpc : {"Classify", "BatchClassify", "ModelInfer"}) {
    cancelled_by_rpc_[rpc] = &cancelled.Add({{"rpc", rpc}});
  }
  for (const char* rpc :
       {"Classify", "BatchClassify", "ClassifyStream", "ModelInfer", "ModelStreamInfer"}) {
    requests_by_rpc_[rpc] = std::make_unique<CountersByCode>(
        requests_, std::map<std::string, std::string>{{"rpc", rpc}});
    request_duration_by_rpc_[rpc] =
        &request_duration_->Add({{"rpc", rpc}}, LatencyBucketsSeconds());
  }
  in_flight_ =
      &GaugeFamily(r, "matid_in_flight_requests", "RPCs (stream: frames) being processed").Add({});
  serving_ =
      &GaugeFamily(r, "matid_serving", "1 while accepting requests, 0 while starting or draining")
           .Add({});
}

// The way through the model: preprocessing, the queue, batches.
void ServerMetrics::RegisterBatchingMetrics(prometheus::Registry& r) {
  preprocess_duration_ = &HistogramFamily(r, "matid_preprocess_duration_seconds",
                                          "Decode, resize and normalise time per image")
                              .Add({}, LatencyBucketsSeconds());
  queue_wait_ =
      &HistogramFamily(r, "matid_queue_wait_seconds", "Time an image waited in the inference queue")
           .Add({}, LatencyBucketsSeconds());
  inference_duration_ =
      &HistogramFamily(r, "matid_inference_duration_seconds", "Forward-pass time per batch")
           .Add({}, LatencyBucketsSeconds());
  batch_size_ = &HistogramFamily(r, "matid_batch_size", "Images per forward pass")
                     .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128});
  batches_ = &CounterFamily(r, "matid_batches_total", "Forward passes run").Add({});
  queue_depth_ = &GaugeFamily(r, "matid_queue_depth", "Images waiting for the model").Add({});
  queue_capacity_ =
      &GaugeFamily(r, "matid_queue_capacity", "Most images that may wait (--max_queue_size)")
           .Add({});
}

// Model versions: what is loaded, loads, lifecycle events, answers.
void ServerMetrics::RegisterModelMetrics(prometheus::Registry& r) {
  predictions_ = &CounterFamily(r, "matid_predictions_total", "Top-1 predictions by label");
  model_info_ =
      &GaugeFamily(r, "matid_model_info", "Each loaded model version (value is always 1)");
  model_loads_ = &CounterFamily(r, "matid_model_loads_total",
                                "Model version loads by model, version and result (ok, failed)");
  model_events_ = &CounterFamily(r, "matid_model_events_total",
                                 "Model lifecycle events by model, type (promotion, rollback, "
                                 "rollback_window_closed) and trigger (policy, admin)");
  model_version_state_ = &GaugeFamily(r, "matid_model_version_state",
                                      "1 for the state each model version is in (LOADING, "
                                      "AVAILABLE, UNLOADING, FAILED), 0 for the others");
}

// A shadow version beside the serving one.
void ServerMetrics::RegisterShadowMetrics(prometheus::Registry& r) {
  shadow_compared_ = &CounterFamily(r, "matid_shadow_compared_total",
                                    "Images both the default and the shadow version classified");
  shadow_agreements_ = &CounterFamily(r, "matid_shadow_agreements_total",
                                      "Compared images on which both versions gave the same top-1");
  shadow_flips_ =
      &CounterFamily(r, "matid_shadow_flips_total",
                     "Compared images whose top-1 differed, by primary and shadow label");
  shadow_frames_ = &CounterFamily(r, "matid_shadow_disagreement_frames_total",
                                  "Images the shadow and serving versions disagree on, by result: "
                                  "saved to --shadow_disagreements_dir, or folder_full, "
                                  "writer_busy, write_failed");
  shadow_skipped_ = &CounterFamily(r, "matid_shadow_skipped_total",
                                   "Sampled images the shadow did not classify, by reason");
  shadow_score_difference_ = &HistogramFamily(
      r, "matid_shadow_score_difference",
      "Shadow top-1 score minus the serving version's top-1 score, per compared image");
  shadow_latency_ = &HistogramFamily(r, "matid_shadow_latency_seconds",
                                     "The shadow's time from queueing an image to its scores");
}

prometheus::Counter& ServerMetrics::CountersByCode::operator[](absl::StatusCode code) {
  auto look_up = [&]() -> prometheus::Counter& {
    std::map<std::string, std::string> labels = labels_;
    labels["code"] = absl::StatusCodeToString(code);
    return family_->Add(labels);
  };
  const int index = static_cast<int>(code);
  if (index < 0 || index >= static_cast<int>(by_code_.size())) return look_up();
  prometheus::Counter* counter = by_code_[index].load(std::memory_order_acquire);
  if (counter == nullptr) {
    counter = &look_up();
    by_code_[index].store(counter, std::memory_order_release);
  }
  return *counter;
}

void ServerMetrics::RecordCancelled(absl::string_view rpc) {
  auto counter = cancelled_by_rpc_.find(rpc);
  if (counter != cancelled_by_rpc_.end()) counter->second->Increment();
}

void ServerMetrics::RecordRequest(absl::string_view rpc, absl::StatusCode code,
                                  absl::Duration elapsed) {
  auto by_code = requests_by_rpc_.find(rpc);
  if (by_code != requests_by_rpc_.end()) {
    (*by_code->second)[code].Increment();
  } else {
    requests_->Add({{"rpc", std::string(rpc)}, {"code", absl::StatusCodeToString(code)}})
        .Increment();
  }
  auto histogram = request_duration_by_rpc_.find(rpc);
  if (histogram != request_duration_by_rpc_.end()) {
    histogram->second->Observe(Seconds(elapsed));
  } else {
    request_duration_->Add({{"rpc", std::string(rpc)}}, LatencyBucketsSeconds())
        .Observe(Seconds(elapsed));
  }
}

void ServerMetrics::RecordImage(const absl::Status& status) {
  (*images_by_code_)[status.code()].Increment();
  if (!status.ok()) RecordRefusal(status);
}

void ServerMetrics::RecordRefusal(const absl::Status& status) {
  const std::string reason = RefusalReason(status);
  auto counter = refusals_by_reason_.find(reason);
  if (counter != refusals_by_reason_.end()) {
    counter->second->Increment();
  } else {
    refusals_->Add({{"reason", reason}}).Increment();
  }
}

void ServerMetrics::RecordPreprocess(absl::Duration elapsed) {
  preprocess_duration_->Observe(Seconds(elapsed));
}

void ServerMetrics::RecordQueueWait(absl::Duration waited) {
  queue_wait_->Observe(Seconds(waited));
}

void ServerMetrics::RecordBatch(int batch_size, absl::Duration inference) {
  batch_size_->Observe(batch_size);
  inference_duration_->Observe(Seconds(inference));
  batches_->Increment();
}

LabelCounters ServerMetrics::PredictionCounters(const ModelInfo& model) {
  std::vector<prometheus::Counter*> counters;
  for (const auto& label : model.labels) {
    counters.push_back(&predictions_->Add({{"model", model.name}, {"label", label}}));
  }
  return LabelCounters(std::move(counters));
}

void ServerMetrics::AddQueueDepth(int delta) { queue_depth_->Increment(delta); }

void ServerMetrics::SetQueueCapacity(int capacity) { queue_capacity_->Set(capacity); }

void ServerMetrics::AddInFlight(int delta) { in_flight_->Increment(delta); }

void ServerMetrics::SetModelLoaded(const ModelIdentity& model, bool loaded) {
  prometheus::Gauge& gauge = model_info_->Add({{"name", model.name},
                                               {"version", model.version},
                                               {"variant", model.variant},
                                               {"sha256", model.sha256}});
  if (loaded) {
    gauge.Set(1);
  } else {
    model_info_->Remove(&gauge);
  }
}

void ServerMetrics::RecordModelLoad(const std::string& model, const std::string& version, bool ok) {
  model_loads_->Add({{"model", model}, {"version", version}, {"result", ok ? "ok" : "failed"}})
      .Increment();
}

void ServerMetrics::RecordModelEvent(const std::string& model, const std::string& type,
                                     const std::string& trigger) {
  model_events_->Add({{"model", model}, {"type", type}, {"trigger", trigger}}).Increment();
}

void ServerMetrics::SetModelVersionState(const std::string& model, const std::string& version,
                                         absl::string_view state) {
  for (absl::string_view name : kModelVersionStates) {
    prometheus::Gauge& gauge = model_version_state_->Add(
        {{"model", model}, {"version", version}, {"state", std::string(name)}});
    if (state.empty()) {
      model_version_state_->Remove(&gauge);
    } else {
      gauge.Set(name == state ? 1 : 0);
    }
  }
}

void ServerMetrics::SetServing(bool serving) { serving_->Set(serving ? 1 : 0); }

ShadowCounters ServerMetrics::ShadowCountersFor(const ModelInfo& model,
                                                const std::string& shadow_version) {
  ShadowCounters counters;
  counters.model_ = model.name;
  counters.shadow_version_ = shadow_version;
  counters.labels_ = model.labels;
  const std::map<std::string, std::string> labels = {{"model", model.name},
                                                     {"shadow_version", shadow_version}};
  counters.compared_ = &shadow_compared_->Add(labels);
  counters.agreements_ = &shadow_agreements_->Add(labels);
  prometheus::Histogram::BucketBoundaries differences;
  for (int i = -10; i <= 10; ++i) differences.push_back(i / 10.0);
  counters.score_difference_ = &shadow_score_difference_->Add(labels, differences);
  counters.latency_ = &shadow_latency_->Add(labels, LatencyBucketsSeconds());
  counters.flips_ = shadow_flips_;
  counters.skipped_ = shadow_skipped_;
  counters.frames_ = shadow_frames_;
  return counters;
}

void ShadowCounters::Compared(bool agree, int primary_label, int shadow_label,
                              double score_difference, absl::Duration shadow_latency) const {
  if (compared_ == nullptr) return;
  compared_->Increment();
  if (agree) agreements_->Increment();
  score_difference_->Observe(score_difference);
  latency_->Observe(absl::ToDoubleSeconds(shadow_latency));
  const int labels = static_cast<int>(labels_.size());
  if (!agree && primary_label >= 0 && primary_label < labels && shadow_label >= 0 &&
      shadow_label < labels) {
    flips_
        ->Add({{"model", model_},
               {"shadow_version", shadow_version_},
               {"primary_label", labels_[primary_label]},
               {"shadow_label", labels_[shadow_label]}})
        .Increment();
  }
}

void ShadowCounters::Frame(const std::string& result) const {
  if (frames_ == nullptr) return;
  frames_->Add({{"model", model_}, {"shadow_version", shadow_version_}, {"result", result}})
      .Increment();
}

void ShadowCounters::Skipped(const std::string& reason) const {
  if (skipped_ == nullptr) return;
  skipped_->Add({{"model", model_}, {"shadow_version", shadow_version_}, {"reason", reason}})
      .Increment();
}

}  // namespace matid
