#include "server/api/classifier_service.h"

#include <algorithm>
#include <limits>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "server/api/call_context.h"
#include "server/api/model_status_proto.h"
#include "server/api/ordered_stream_reactor.h"
#include "server/api/parsed_unary.h"
#include "server/api/request_image.h"
#include "server/core/metrics.h"
#include "server/core/refusal.h"

namespace matid {
namespace {

absl::Status NotServing() {
  return Refusal(absl::UnavailableError("server is not serving (starting or draining)"),
                 "not_serving");
}

// The wire's top_k is unsigned; any count above the labels means "all of them".
int TopKOf(uint32_t requested) {
  return static_cast<int>(std::min<uint32_t>(requested, std::numeric_limits<int>::max()));
}

int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

void FillPredictions(const Classification& result, const ModelInfo& model,
                     google::protobuf::RepeatedPtrField<v1::Prediction>* out) {
  for (const ScoredLabel& scored : result.top) {
    v1::Prediction* prediction = out->Add();
    prediction->set_label(model.labels[scored.index]);
    prediction->set_index(scored.index);
    prediction->set_score(scored.score);
  }
}

void FillModelRef(const ModelIdentity& identity, v1::ModelRef* ref) {
  ref->set_name(identity.name);
  ref->set_version(identity.version);
  ref->set_variant(identity.variant);
  ref->set_sha256(identity.sha256);
}

// Predictions and provenance: what every successful answer carries.
template <typename Answer>
void FillAnswer(const Classification& result, const ServingModel& model, Answer* out) {
  FillPredictions(result, model.info(), out->mutable_predictions());
  FillModelRef(model.identity(), out->mutable_model());
}

void FillTimings(const Classification& result, absl::Duration total, v1::Timings* timings) {
  timings->set_preprocess_us(Micros(result.preprocess));
  timings->set_queue_us(Micros(result.timing.queue_wait));
  timings->set_inference_us(Micros(result.timing.inference));
  timings->set_total_us(Micros(total));
  timings->set_batch_size(result.timing.batch_size);
}

// INVALID_ARGUMENT (with its refusal reason) for a batch with no items or
// more than the limit.
absl::Status CheckBatchSize(int items, int max_items) {
  if (items == 0) {
    return Refusal(absl::InvalidArgumentError("BatchClassify needs at least one item"),
                   "batch_empty");
  }
  if (items > max_items) {
    return Refusal(absl::InvalidArgumentError(
                       absl::StrCat("BatchClassify has ", items, " items; the limit is ", max_items,
                                    " (--max_batch_items): split the request")),
                   "batch_too_large");
  }
  return absl::OkStatus();
}

v1::Status ToItemStatus(const absl::Status& status) {
  v1::Status item;
  item.set_code(static_cast<int>(status.code()));
  item.set_message(std::string(status.message()));
  return item;
}

}  // namespace

ClassifierService::ClassifierService(const ModelRouter* models, const BatcherOptions& batcher,
                                     ServerMetrics* metrics, const ServiceLimits& limits)
    : models_(models),
      batcher_options_(batcher),
      metrics_(metrics),
      limits_(limits),
      started_at_(absl::Now()) {}

absl::StatusOr<std::shared_ptr<const ServingModel>> ClassifierService::Resolve(
    const std::string& model, int64_t version) const {
  auto resolved = models_->Resolve(model, version);
  if (!resolved.ok() && metrics_ != nullptr) metrics_->RecordImage(resolved.status());
  return resolved;
}

bool ClassifierService::RefusedAsNotServing(const Answer& answer) const {
  if (serving_.load()) return false;
  if (metrics_ != nullptr) metrics_->RecordRefusal(NotServing());
  answer(NotServing());
  return true;
}

grpc::ServerUnaryReactor* ClassifierService::Classify(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  return ServeParsedUnary<v1::ClassifyRequest, v1::ClassifyResponse>(
      metrics_, "Classify", *request, response, limits_.max_parsed_request_bytes,
      [this, context](const v1::ClassifyRequest& parsed, v1::ClassifyResponse* answer,
                      CountedUnary counted) {
        return RunClassify(context, parsed, answer, std::move(counted));
      });
}

grpc::ServerUnaryReactor* ClassifierService::BatchClassify(grpc::CallbackServerContext* context,
                                                           const grpc::ByteBuffer* request,
                                                           grpc::ByteBuffer* response) {
  return ServeParsedUnary<v1::BatchClassifyRequest, v1::BatchClassifyResponse>(
      metrics_, "BatchClassify", *request, response, limits_.max_parsed_request_bytes,
      [this, context](const v1::BatchClassifyRequest& parsed, v1::BatchClassifyResponse* answer,
                      CountedUnary counted) {
        return RunBatchClassify(context, parsed, answer, std::move(counted));
      });
}

grpc::ServerUnaryReactor* ClassifierService::RunClassify(grpc::CallbackServerContext* context,
                                                         const v1::ClassifyRequest& request,
                                                         v1::ClassifyResponse* response,
                                                         CountedUnary counted) {
  const absl::Time start = counted.start;
  grpc::ServerUnaryReactor* reactor = counted.reactor;
  const Answer finish = std::move(counted.finish);
  if (RefusedAsNotServing(finish)) return reactor;
  absl::StatusOr<ImageRef> image = ToImageRef(request.image());
  if (!image.ok()) {
    if (metrics_ != nullptr) metrics_->RecordImage(image.status());
    finish(image.status());
    return reactor;
  }
  auto model = Resolve(request.model(), request.model_version());
  if (!model.ok()) {
    finish(model.status());
    return reactor;
  }
  response->set_request_id(request.request_id());
  *response->mutable_tags() = request.tags();
  ClassifyCall call{*image, TopKOf(request.top_k()), DeadlineOf(context), CancelledCheck(context)};
  // The callback holds the version that admitted the request: it finishes
  // there even if a newer version takes over meanwhile.
  (*model)->classifier().Classify(
      call, [model = *model, response, start, finish](absl::StatusOr<Classification> result) {
        if (result.ok()) {
          FillAnswer(*result, *model, response);
          FillTimings(*result, absl::Now() - start, response->mutable_timings());
        }
        finish(result.status());
      });
  return reactor;
}

grpc::ServerUnaryReactor* ClassifierService::RunBatchClassify(
    grpc::CallbackServerContext* context, const v1::BatchClassifyRequest& request,
    v1::BatchClassifyResponse* response, CountedUnary counted) {
  const absl::Time start = counted.start;
  grpc::ServerUnaryReactor* reactor = counted.reactor;
  const Answer finish = std::move(counted.finish);
  if (RefusedAsNotServing(finish)) return reactor;
  const int items = request.items_size();
  if (absl::Status size = CheckBatchSize(items, limits_.max_batch_items); !size.ok()) {
    if (metrics_ != nullptr) metrics_->RecordRefusal(size);
    finish(size);
    return reactor;
  }

  for (int i = 0; i < items; ++i) response->add_results();
  // Shared by the item callbacks; the last one to finish answers the RPC.
  auto remaining = std::make_shared<std::atomic<int>>(items);
  const ItemDone item_done = [response, start, remaining, finish](
                                 size_t i, absl::StatusOr<Classification> result,
                                 const ServingModel* model) {
    v1::BatchItemResult* item = response->mutable_results(static_cast<int>(i));
    *item->mutable_status() = ToItemStatus(result.status());
    if (result.ok()) {
      v1::ClassifyResponse* out = item->mutable_response();
      FillAnswer(*result, *model, out);
      FillTimings(*result, absl::Now() - start, out->mutable_timings());
    }
    if (remaining->fetch_sub(1) == 1) finish(absl::OkStatus());
  };

  // Items may name different models: each model's items are queued together.
  for (auto& [key, group] : GroupByModel(context, request, response, item_done)) {
    group.model->classifier().ClassifyAll(
        group.calls, [item_done, items = group.items,
                      model = group.model](std::vector<absl::StatusOr<Classification>> results) {
          for (size_t j = 0; j < results.size(); ++j) {
            item_done(items[j], std::move(results[j]), model.get());
          }
        });
  }
  return reactor;
}

std::map<const ServingModel*, ClassifierService::ModelGroup> ClassifierService::GroupByModel(
    grpc::CallbackServerContext* context, const v1::BatchClassifyRequest& request,
    v1::BatchClassifyResponse* response, const ItemDone& item_done) const {
  std::map<const ServingModel*, ModelGroup> groups;
  for (int i = 0; i < request.items_size(); ++i) {
    const v1::ClassifyRequest& item = request.items(i);
    v1::ClassifyResponse* out = response->mutable_results(i)->mutable_response();
    out->set_request_id(item.request_id());
    *out->mutable_tags() = item.tags();
    absl::StatusOr<ImageRef> image = ToImageRef(item.image());
    if (!image.ok()) {
      if (metrics_ != nullptr) metrics_->RecordImage(image.status());
      item_done(i, image.status(), nullptr);
      continue;
    }
    auto model = Resolve(item.model(), item.model_version());
    if (!model.ok()) {
      item_done(i, model.status(), nullptr);
      continue;
    }
    ModelGroup& group = groups[model->get()];
    group.model = *model;
    group.calls.push_back(
        {*image, TopKOf(item.top_k()), DeadlineOf(context), CancelledCheck(context)});
    group.items.push_back(i);
  }
  return groups;
}

// One camera stream: frames are classified as they arrive and answered in
// frame order (see ordered_stream_reactor.h).
class ClassifierService::StreamReactor final
    : public OrderedStreamReactor<v1::Frame, v1::FrameResult> {
 public:
  StreamReactor(ClassifierService* service, grpc::CallbackServerContext* context)
      : OrderedStreamReactor(service->limits_.max_stream_frames_in_flight,
                             service->limits_.max_parsed_request_bytes),
        service_(service),
        context_(context) {
    Begin(service_->serving_.load() ? grpc::Status::OK
                                    : grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                                   "server is not serving (starting or draining)"));
  }

 private:
  void Handle(const v1::Frame& frame, Respond respond) override {
    const absl::Time start = absl::Now();
    ServerMetrics* metrics = service_->metrics_;
    if (metrics != nullptr) metrics->AddInFlight(1);
    // `model` answered the frame (nullptr when it was refused before).
    auto answer = [start, metrics, seq = frame.seq(), respond = std::move(respond)](
                      absl::StatusOr<Classification> result, const ServingModel* model) {
      const absl::Duration elapsed = absl::Now() - start;
      v1::FrameResult out;
      out.set_seq(seq);
      if (result.ok()) {
        FillAnswer(*result, *model, &out);
        FillTimings(*result, elapsed, out.mutable_timings());
      }
      *out.mutable_status() = ToItemStatus(result.status());
      if (metrics != nullptr) {
        metrics->RecordRequest("ClassifyStream", result.status().code(), elapsed);
        metrics->AddInFlight(-1);
      }
      respond(std::move(out));
    };

    absl::StatusOr<ImageRef> image = ToImageRef(frame.image());
    if (!image.ok()) {
      if (metrics != nullptr) metrics->RecordImage(image.status());
      answer(image.status(), nullptr);
      return;
    }
    auto model = service_->Resolve(frame.model(), frame.model_version());
    if (!model.ok()) {
      answer(model.status(), nullptr);
      return;
    }
    ClassifyCall call{*image, TopKOf(frame.top_k()), DeadlineOf(context_),
                      CancelledCheck(context_)};
    (*model)->classifier().Classify(
        call, [answer = std::move(answer), model = *model](absl::StatusOr<Classification> result) {
          answer(std::move(result), model.get());
        });
  }

  // The frame's seq is unknown: it was not parsed.
  void Refuse(const absl::Status& status, Respond respond) override {
    if (service_->metrics_ != nullptr) {
      service_->metrics_->RecordRefusal(status);
      service_->metrics_->RecordRequest("ClassifyStream", status.code(), absl::ZeroDuration());
    }
    v1::FrameResult out;
    *out.mutable_status() = ToItemStatus(status);
    respond(std::move(out));
  }

  ClassifierService* const service_;
  grpc::CallbackServerContext* const context_;
};

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ClassifierService::ClassifyStream(
    grpc::CallbackServerContext* context) {
  return new StreamReactor(this, context);
}

grpc::ServerUnaryReactor* ClassifierService::Health(grpc::CallbackServerContext* context,
                                                    const v1::HealthRequest* request,
                                                    v1::HealthResponse* response) {
  response->set_state(serving_.load() ? v1::HealthResponse::SERVING
                                      : v1::HealthResponse::NOT_SERVING);
  if (const auto serving = models_->DefaultModel()) {
    const ModelInfo& model = serving->info();
    v1::ModelInfo* info = response->mutable_model();
    info->set_name(model.name);
    info->set_version(serving->identity().version);
    info->set_variant(model.variant);
    for (const auto& label : model.labels) info->add_labels(label);
    v1::InputSpec* input = info->mutable_input();
    input->set_width(model.input.width);
    input->set_height(model.input.height);
    input->set_channels(model.input.channels());
    input->set_color(std::string(ColorModeName(model.input.color)));
    input->set_resize(std::string(ResizeModeName(model.input.resize)));
    for (float m : model.input.mean) input->add_mean(m);
    for (float s : model.input.std) input->add_std(s);
  }
  for (const ModelVersionStatus& status : models_->Statuses()) {
    ToProto(status, response->add_models());
  }
  response->set_uptime_seconds(absl::ToDoubleSeconds(absl::Now() - started_at_));
  response->set_queue_depth(models_->queue_depth());
  response->set_in_flight(models_->in_flight());
  response->set_max_queue_size(batcher_options_.max_queue_size);
  response->set_max_batch_size(batcher_options_.max_batch_size);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace matid
