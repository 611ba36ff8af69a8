#include "server/api/inference_service.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/api/call_context.h"
#include "server/api/inference_tensors.h"
#include "server/api/ordered_stream_reactor.h"
#include "server/api/parsed_unary.h"
#include "server/core/metrics.h"
#include "server/core/refusal.h"

namespace matid {
namespace {

constexpr char kPlatform[] = "pytorch_libtorch";

// Answers a call whose response is filled already.
grpc::ServerUnaryReactor* Finished(grpc::CallbackServerContext* context,
                                   const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

absl::Status NotServing() {
  return Refusal(absl::UnavailableError("server is not serving (starting or draining)"),
                 "not_serving");
}

// The wire's version string: "" (the default version, 0) or a positive integer.
absl::StatusOr<int64_t> ParseVersion(const std::string& version) {
  if (version.empty()) return 0;
  int64_t parsed = 0;
  if (!absl::SimpleAtoi(version, &parsed) || parsed < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version \"", version,
                     "\" is not a version number (a positive integer, or empty "
                     "for the model's default version)"));
  }
  return parsed;
}

const char* IndexState(ModelVersionState state) {
  switch (state) {
    case ModelVersionState::kAvailable:
      return "READY";
    case ModelVersionState::kLoading:
      return "LOADING";
    case ModelVersionState::kUnloading:
      return "UNLOADING";
    case ModelVersionState::kFailed:
      return "UNAVAILABLE";
  }
  return "UNAVAILABLE";
}

void ToProto(const DurationStatistic& from, inference::StatisticDuration* to) {
  to->set_count(from.count);
  to->set_ns(from.ns);
}

void ToProto(const ModelIdentity& identity, const InferenceStatisticsSnapshot& from,
             inference::ModelStatistics* to) {
  to->set_name(identity.name);
  to->set_version(identity.version);
  if (from.last_inference > absl::UnixEpoch()) {
    to->set_last_inference(absl::ToUnixMillis(from.last_inference));
  }
  to->set_inference_count(from.inference_count);
  to->set_execution_count(from.execution_count);
  inference::InferStatistics* stats = to->mutable_inference_stats();
  ToProto(from.success, stats->mutable_success());
  ToProto(from.fail, stats->mutable_fail());
  ToProto(from.queue, stats->mutable_queue());
  ToProto(from.compute_input, stats->mutable_compute_input());
  ToProto(from.compute_infer, stats->mutable_compute_infer());
  ToProto(from.compute_output, stats->mutable_compute_output());
  for (const auto& [size, batch] : from.batches) {
    inference::InferBatchStatistics* out = to->add_batch_stats();
    out->set_batch_size(size);
    ToProto(batch.compute_input, out->mutable_compute_input());
    ToProto(batch.compute_infer, out->mutable_compute_infer());
    ToProto(batch.compute_output, out->mutable_compute_output());
  }
}

// The repository parameter "version" (int64, or a string of digits), or 0.
absl::StatusOr<int64_t> VersionParameter(
    const google::protobuf::Map<std::string, inference::ModelRepositoryParameter>& parameters) {
  auto it = parameters.find("version");
  if (it == parameters.end()) return 0;
  if (it->second.has_int64_param() && it->second.int64_param() > 0) {
    return it->second.int64_param();
  }
  if (it->second.has_string_param()) return ParseVersion(it->second.string_param());
  return absl::InvalidArgumentError(
      "parameter \"version\" must be a positive integer (int64_param)");
}

}  // namespace

InferenceService::InferenceService(const ModelRouter* models, ModelControl* control,
                                   const BatcherOptions& batcher, ServerMetrics* metrics,
                                   const ServiceLimits& limits, AdminAccess admin_access,
                                   std::string server_version)
    : models_(models),
      control_(control),
      batcher_options_(batcher),
      metrics_(metrics),
      limits_(limits),
      server_version_(std::move(server_version)),
      admin_calls_(std::move(admin_access)) {}

absl::StatusOr<std::shared_ptr<const ServingModel>> InferenceService::Resolve(
    const std::string& name, const std::string& version) const {
  absl::StatusOr<int64_t> number = ParseVersion(version);
  if (!number.ok()) return number.status();
  return models_->Resolve(name, *number);
}

void InferenceService::Infer(grpc::CallbackServerContext* context,
                             const inference::ModelInferRequest& request,
                             inference::ModelInferResponse* response, InferDone done) const {
  auto refuse = [this, &done](const absl::Status& status) {
    if (metrics_ != nullptr) metrics_->RecordRefusal(status);
    done(status);
  };
  if (!serving_.load()) return refuse(NotServing());
  auto model = Resolve(request.model_name(), request.model_version());
  if (!model.ok()) return refuse(model.status());
  auto outputs = ReadRequestedOutputs(request);
  if (!outputs.ok()) return refuse(outputs.status());
  const ModelInfo& info = (*model)->info();
  auto images = ReadInferImages(request, info.input, limits_.max_batch_items);
  if (!images.ok()) return refuse(images.status());

  response->set_model_name((*model)->identity().name);
  response->set_model_version((*model)->identity().version);
  response->set_id(request.id());
  const int classes = static_cast<int>(info.labels.size());
  std::vector<ClassifyCall> calls;
  calls.reserve(images->images.size());
  for (const ImageRef& image : images->images) {
    calls.push_back({image, classes, DeadlineOf(context), CancelledCheck(context)});
  }
  // The N images are queued together (all or none); once all are answered
  // the outputs are written, or the first failure (by position) answers.
  (*model)->classifier().ClassifyAll(
      calls, [model = *model, outputs = *std::move(outputs), response,
              done = std::move(done)](std::vector<absl::StatusOr<Classification>> results) {
        std::vector<Classification> answered;
        answered.reserve(results.size());
        for (auto& result : results) {
          if (!result.ok()) return done(result.status());
          answered.push_back(*std::move(result));
        }
        WriteInferOutputs(answered, model->info(), outputs, response);
        done(absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  return ServeParsedUnary<inference::ModelInferRequest, inference::ModelInferResponse>(
      metrics_, "ModelInfer", *request, response, limits_.max_parsed_request_bytes,
      [this, context](const inference::ModelInferRequest& parsed,
                      inference::ModelInferResponse* answer, CountedUnary counted) {
        Infer(context, parsed, answer, std::move(counted.finish));
        return counted.reactor;
      });
}

namespace {
// A stream answer's error_message: the status code's name, then the message.
std::string ErrorMessage(const absl::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message());
}
}  // namespace

// One ModelStreamInfer stream: each request is answered in order, a failed
// one with error_message (its status code's name, then the message) and
// the stream goes on.
class InferenceService::StreamReactor final
    : public OrderedStreamReactor<inference::ModelInferRequest,
                                  inference::ModelStreamInferResponse> {
 public:
  StreamReactor(InferenceService* service, grpc::CallbackServerContext* context)
      : OrderedStreamReactor(service->limits_.max_stream_frames_in_flight,
                             service->limits_.max_parsed_request_bytes),
        service_(service),
        context_(context) {
    Begin(service_->serving_.load() ? grpc::Status::OK : ToGrpc(NotServing()));
  }

 private:
  void Handle(const inference::ModelInferRequest& request, Respond respond) override {
    const absl::Time start = absl::Now();
    ServerMetrics* metrics = service_->metrics_;
    if (metrics != nullptr) metrics->AddInFlight(1);
    auto answer = std::make_shared<inference::ModelStreamInferResponse>();
    answer->mutable_infer_response()->set_id(request.id());
    service_->Infer(
        context_, request, answer->mutable_infer_response(),
        [answer, metrics, start, respond = std::move(respond)](const absl::Status& status) {
          if (!status.ok()) {
            answer->set_error_message(ErrorMessage(status));
          }
          if (metrics != nullptr) {
            metrics->RecordRequest("ModelStreamInfer", status.code(), absl::Now() - start);
            metrics->AddInFlight(-1);
          }
          respond(std::move(*answer));
        });
  }

  void Refuse(const absl::Status& status, Respond respond) override {
    if (service_->metrics_ != nullptr) {
      service_->metrics_->RecordRefusal(status);
      service_->metrics_->RecordRequest("ModelStreamInfer", status.code(), absl::ZeroDuration());
    }
    inference::ModelStreamInferResponse answer;
    answer.set_error_message(ErrorMessage(status));
    respond(std::move(answer));
  }

  InferenceService* const service_;
  grpc::CallbackServerContext* const context_;
};

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* InferenceService::ModelStreamInfer(
    grpc::CallbackServerContext* context) {
  return new StreamReactor(this, context);
}

grpc::ServerUnaryReactor* InferenceService::ServerLive(grpc::CallbackServerContext* context,
                                                       const inference::ServerLiveRequest*,
                                                       inference::ServerLiveResponse* response) {
  response->set_live(true);
  return Finished(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(grpc::CallbackServerContext* context,
                                                        const inference::ServerReadyRequest*,
                                                        inference::ServerReadyResponse* response) {
  response->set_ready(serving_.load() && models_->DefaultModel() != nullptr);
  return Finished(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(grpc::CallbackServerContext* context,
                                                       const inference::ModelReadyRequest* request,
                                                       inference::ModelReadyResponse* response) {
  absl::StatusOr<int64_t> version = ParseVersion(request->version());
  response->set_ready(serving_.load() && version.ok() &&
                      models_->Resolve(request->name(), *version).ok());
  return Finished(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name("matid");
  response->set_version(server_version_);
  for (const char* extension :
       {"classification", "model_configuration", "model_repository", "statistics"}) {
    response->add_extensions(extension);
  }
  return Finished(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  auto model = Resolve(request->name(), request->version());
  if (!model.ok()) return Finished(context, model.status());
  const ModelIdentity& identity = (*model)->identity();
  response->set_name(identity.name);
  if (!request->version().empty()) {
    response->add_versions(identity.version);
  } else {
    for (const ModelVersionStatus& status : models_->Statuses()) {
      if (status.model == identity.name && status.state == ModelVersionState::kAvailable) {
        response->add_versions(status.version);
      }
    }
  }
  response->set_platform(kPlatform);
  auto* input = response->add_inputs();
  input->set_name(kImageInputName);
  input->set_datatype("BYTES");
  input->add_shape(-1);
  input->add_shape(1);
  auto* output = response->add_outputs();
  output->set_name(kProbabilitiesOutputName);
  output->set_datatype("FP32");
  output->add_shape(-1);
  output->add_shape(static_cast<int64_t>((*model)->info().labels.size()));
  return Finished(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  auto model = Resolve(request->name(), request->version());
  if (!model.ok()) return Finished(context, model.status());
  inference::ModelConfig* config = response->mutable_config();
  config->set_name((*model)->identity().name);
  config->set_platform(kPlatform);
  config->set_backend("pytorch");
  config->set_max_batch_size(limits_.max_batch_items);
  inference::ModelInput* input = config->add_input();
  input->set_name(kImageInputName);
  input->set_data_type(inference::TYPE_STRING);
  input->add_dims(1);
  inference::ModelOutput* output = config->add_output();
  output->set_name(kProbabilitiesOutputName);
  output->set_data_type(inference::TYPE_FP32);
  output->add_dims(static_cast<int64_t>((*model)->info().labels.size()));
  inference::ModelDynamicBatching* batching = config->mutable_dynamic_batching();
  batching->add_preferred_batch_size(batcher_options_.max_batch_size);
  batching->set_max_queue_delay_microseconds(batcher_options_.max_queue_delay_us);
  return Finished(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(
    grpc::CallbackServerContext* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  bool model_known = request->name().empty();
  for (const ModelVersionStatus& status : models_->Statuses()) {
    if (!request->name().empty() && status.model != request->name()) continue;
    model_known = true;
    if (!request->version().empty() && status.version != request->version()) continue;
    if (status.state != ModelVersionState::kAvailable) continue;
    // The default version by 0: with --model_dir that is the only way to it.
    int64_t version = 0;
    if (!status.is_default && !absl::SimpleAtoi(status.version, &version)) continue;
    auto model = models_->Resolve(status.model, version);
    if (!model.ok()) continue;  // unloaded meanwhile
    ToProto((*model)->identity(), (*model)->statistics(), response->add_model_stats());
  }
  return Finished(context,
                  model_known ? absl::OkStatus() : models_->Resolve(request->name(), 0).status());
}

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context, const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  for (const ModelVersionStatus& status : models_->Statuses()) {
    if (request->ready() && status.state != ModelVersionState::kAvailable) continue;
    auto* index = response->add_models();
    index->set_name(status.model);
    index->set_version(status.version);
    index->set_state(IndexState(status.state));
    index->set_reason(status.reason);
  }
  return Finished(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  absl::StatusOr<int64_t> version = VersionParameter(request->parameters());
  return admin_calls_.Run(context, [this, model = request->model_name(), version] {
    if (!version.ok()) return version.status();
    if (model.empty()) return absl::InvalidArgumentError("model_name is empty");
    if (*version > 0) return control_->Load(model, *version);
    // Load the model as its version policy says: rescan, then it must serve.
    control_->ReloadAndWait();
    return models_->Resolve(model, 0).status();
  });
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  absl::StatusOr<int64_t> version = VersionParameter(request->parameters());
  return admin_calls_.Run(context, [this, model = request->model_name(), version] {
    if (!version.ok()) return version.status();
    if (*version == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "matid keeps every model of its repository serving: name the version to stop serving "
          "with the parameter \"version\" (int64), or remove the folder of model ",
          model, " from the repository"));
    }
    return control_->Unload(model, *version);
  });
}

}  // namespace matid
