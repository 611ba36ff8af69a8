#include "server/admin_service.h"

#include <utility>

#include "server/model_status_proto.h"

namespace matid {

AdminService::AdminService(ModelManager* models, std::vector<std::string> admin_subjects)
    : models_(models), calls_(std::move(admin_subjects)) {}

grpc::ServerUnaryReactor* AdminService::Run(grpc::CallbackServerContext* context,
                                            v1::ListModelsResponse* response,
                                            std::function<absl::Status()> change) {
  return calls_.Run(context, [this, response, change = std::move(change)] {
    const absl::Status status = change();
    for (const ModelVersionStatus& version : models_->Statuses()) {
      ToProto(version, response->add_models());
    }
    return status;
  });
}
grpc::ServerUnaryReactor* AdminService::ListModels(grpc::CallbackServerContext* context,
                                                   const v1::ListModelsRequest*,
                                                   v1::ListModelsResponse* response) {
  return Run(context, response, [] { return absl::OkStatus(); });
}

grpc::ServerUnaryReactor* AdminService::Reload(grpc::CallbackServerContext* context,
                                               const v1::ReloadRequest*,
                                               v1::ListModelsResponse* response) {
  return Run(context, response, [this] {
    models_->ReloadAndWait();
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::Pin(grpc::CallbackServerContext* context,
                                            const v1::PinRequest* request,
                                            v1::ListModelsResponse* response) {
  std::vector<int64_t> versions(request->versions().begin(), request->versions().end());
  return Run(context, response, [this, model = request->model(), versions] {
    return models_->Pin(model, versions);
  });
}

grpc::ServerUnaryReactor* AdminService::Load(grpc::CallbackServerContext* context,
                                             const v1::VersionRequest* request,
                                             v1::ListModelsResponse* response) {
  return Run(context, response, [this, model = request->model(), version = request->version()] {
    return models_->Load(model, version);
  });
}

grpc::ServerUnaryReactor* AdminService::Unload(grpc::CallbackServerContext* context,
                                               const v1::VersionRequest* request,
                                               v1::ListModelsResponse* response) {
  return Run(context, response, [this, model = request->model(), version = request->version()] {
    return models_->Unload(model, version);
  });
}

}  // namespace matid
