// The Open Inference Protocol's gRPC service (inference.GRPCInferenceService,
// KServe v2 with Triton's additions), beside matid.v1 on the same port: a
// thin translator onto the same core. Images go through the same model
// manager, classifier and batcher as matid.v1's (one queue, the same
// limits, shedding, metrics and error codes); the repository RPCs go
// through the same ModelRouter and ModelControl operations and access rule as
// matid.v1.ModelAdmin. Tensor reading and writing: inference_tensors.h.
// Thread-safety: gRPC calls the handlers from its own threads; SetServing
// may be called from any thread; the destructor waits for repository
// changes still running.
#ifndef MATID_SERVER_API_INFERENCE_SERVICE_H_
#define MATID_SERVER_API_INFERENCE_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/grpc_service.grpc.pb.h"
#include "server/api/admin_calls.h"
#include "server/api/classifier_service.h"
#include "server/core/batcher.h"
#include "server/router/model_control.h"
#include "server/router/model_router.h"

namespace matid {

class ServerMetrics;

// The generated service with the inference methods taking wire bytes, parsed
// only within --max_parsed_request_mb (request_parse.h): gRPC's
// CallbackService with ModelInfer and ModelStreamInfer raw.
namespace raw_inference {
using G = inference::GRPCInferenceService;
using Base = G::WithCallbackMethod_ServerLive<
    G::WithCallbackMethod_ServerReady<G::WithCallbackMethod_ModelReady<
        G::WithCallbackMethod_ServerMetadata<G::WithCallbackMethod_ModelMetadata<
            G::WithRawCallbackMethod_ModelInfer<G::WithRawCallbackMethod_ModelStreamInfer<
                G::WithCallbackMethod_ModelConfig<G::WithCallbackMethod_ModelStatistics<
                    G::WithCallbackMethod_RepositoryIndex<G::WithCallbackMethod_RepositoryModelLoad<
                        G::WithCallbackMethod_RepositoryModelUnload<G::Service>>>>>>>>>>>>;
}  // namespace raw_inference

class InferenceService final : public raw_inference::Base {
 public:
  // `models` and `control` must outlive the service; `metrics` may be nullptr.
  // `server_version` answers ServerMetadata.
  InferenceService(const ModelRouter* models, ModelControl* control, const BatcherOptions& batcher,
                   ServerMetrics* metrics, const ServiceLimits& limits, AdminAccess admin_access,
                   std::string server_version);

  // While not serving, ServerReady/ModelReady say false and inference gets
  // UNAVAILABLE.
  void SetServing(bool serving) { serving_.store(serving); }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ModelStreamInfer(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;

 private:
  class StreamReactor;
  using InferDone = std::function<void(const absl::Status&)>;

  // Runs one ModelInfer request: fills `response` and calls `done` exactly
  // once (inline on a refusal, else from the batcher's worker).
  // REQUIRES: `request` and `response` outlive `done`.
  void Infer(grpc::CallbackServerContext* context, const inference::ModelInferRequest& request,
             inference::ModelInferResponse* response, InferDone done) const;
  // The version serving `name`/`version` (the wire's version string: empty
  // or a positive integer).
  absl::StatusOr<std::shared_ptr<const ServingModel>> Resolve(const std::string& name,
                                                              const std::string& version) const;

  // Constant after construction.
  const ModelRouter* const models_;
  ModelControl* const control_;
  const BatcherOptions batcher_options_;
  ServerMetrics* const metrics_;  // or nullptr if not recorded
  const ServiceLimits limits_;
  const std::string server_version_;

  std::atomic<bool> serving_{false};
  AdminCalls admin_calls_;  // last: destroyed (waited for) first
};

}  // namespace matid

#endif  // MATID_SERVER_API_INFERENCE_SERVICE_H_
