#include "server/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/refusal.h"

namespace matid {
namespace {

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

}  // namespace

absl::StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Create(
    const MetricsOptions& options) {
  auto endpoint = MetricsEndpoint::Create(options.bind_address, options.port);
  if (!endpoint.ok()) return endpoint.status();
  return std::unique_ptr<ServerMetrics>(new ServerMetrics(*std::move(endpoint)));
}

ServerMetrics::ServerMetrics(std::unique_ptr<MetricsEndpoint> endpoint)
    : endpoint_(std::move(endpoint)) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  auto& r = endpoint_->registry();
  requests_ = &BuildCounter()
                   .Name("matid_requests_total")
                   .Help("Finished RPCs (ClassifyStream: frames) by rpc and gRPC status code")
                   .Register(r);
  images_ = &BuildCounter()
                 .Name("matid_images_total")
                 .Help("Images classified or refused, by gRPC status code")
                 .Register(r);
  images_by_code_ = std::make_unique<CountersByCode>(images_, std::map<std::string, std::string>{});
  refusals_ = &BuildCounter()
                   .Name("matid_refusals_total")
                   .Help("Images and requests refused or dropped unrun, by reason")
                   .Register(r);
  for (absl::string_view reason : kRefusalReasons) {
    refusals_by_reason_.emplace(reason, &refusals_->Add({{"reason", std::string(reason)}}));
  }
  request_duration_ =
      &BuildHistogram()
           .Name("matid_request_duration_seconds")
           .Help("Server-side time from receiving a request (stream: frame) to its answer")
           .Register(r);
  for (const char* rpc :
       {"Classify", "BatchClassify", "ClassifyStream", "ModelInfer", "ModelStreamInfer"}) {
    requests_by_rpc_[rpc] = std::make_unique<CountersByCode>(
        requests_, std::map<std::string, std::string>{{"rpc", rpc}});
    request_duration_by_rpc_[rpc] =
        &request_duration_->Add({{"rpc", rpc}}, LatencyBucketsSeconds());
  }
  preprocess_duration_ = &BuildHistogram()
                              .Name("matid_preprocess_duration_seconds")
                              .Help("Decode, resize and normalise time per image")
                              .Register(r)
                              .Add({}, LatencyBucketsSeconds());
  queue_wait_ = &BuildHistogram()
                     .Name("matid_queue_wait_seconds")
                     .Help("Time an image waited in the inference queue")
                     .Register(r)
                     .Add({}, LatencyBucketsSeconds());
  inference_duration_ = &BuildHistogram()
                             .Name("matid_inference_duration_seconds")
                             .Help("Forward-pass time per batch")
                             .Register(r)
                             .Add({}, LatencyBucketsSeconds());
  batch_size_ = &BuildHistogram()
                     .Name("matid_batch_size")
                     .Help("Images per forward pass")
                     .Register(r)
                     .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128});
  batches_ =
      &BuildCounter().Name("matid_batches_total").Help("Forward passes run").Register(r).Add({});
  queue_depth_ = &BuildGauge()
                      .Name("matid_queue_depth")
                      .Help("Images waiting for the model")
                      .Register(r)
                      .Add({});
  queue_capacity_ = &BuildGauge()
                         .Name("matid_queue_capacity")
                         .Help("Most images that may wait (--max_queue_size)")
                         .Register(r)
                         .Add({});
  in_flight_ = &BuildGauge()
                    .Name("matid_in_flight_requests")
                    .Help("RPCs (stream: frames) being processed")
                    .Register(r)
                    .Add({});
  serving_ = &BuildGauge()
                  .Name("matid_serving")
                  .Help("1 while accepting requests, 0 while starting or draining")
                  .Register(r)
                  .Add({});
  predictions_ = &BuildCounter()
                      .Name("matid_predictions_total")
                      .Help("Top-1 predictions by label")
                      .Register(r);
  model_info_ = &BuildGauge()
                     .Name("matid_model_info")
                     .Help("Each loaded model version (value is always 1)")
                     .Register(r);
  model_loads_ = &BuildCounter()
                      .Name("matid_model_loads_total")
                      .Help("Model version loads by model, version and result (ok, failed)")
                      .Register(r);
  model_version_state_ = &BuildGauge()
                              .Name("matid_model_version_state")
                              .Help("1 for the state each model version is in (LOADING, "
                                    "AVAILABLE, UNLOADING, FAILED), 0 for the others")
                              .Register(r);
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

void ServerMetrics::RecordModelLoad(const std::string& model, const std::string& version,
                                    bool ok) {
  model_loads_->Add({{"model", model}, {"version", version}, {"result", ok ? "ok" : "failed"}})
      .Increment();
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

}  // namespace matid
