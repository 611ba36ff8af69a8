#include "server/admin_service.h"

#include <grpc/grpc_security_constants.h>

#include <thread>
#include <utility>

#include "server/admin_access.h"
#include "server/model_status_proto.h"

namespace matid {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

std::vector<std::string> CallerIdentities(const grpc::CallbackServerContext* context) {
  std::vector<std::string> identities;
  const auto auth = context->auth_context();
  if (auth == nullptr) return identities;
  for (const char* property : {GRPC_X509_SUBJECT_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME}) {
    for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
      identities.emplace_back(value.data(), value.size());
    }
  }
  return identities;
}

}  // namespace

AdminService::AdminService(ModelManager* models, std::vector<std::string> admin_subjects)
    : models_(models), admin_subjects_(std::move(admin_subjects)) {}

AdminService::~AdminService() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return running_ == 0; });
}

grpc::ServerUnaryReactor* AdminService::Run(grpc::CallbackServerContext* context,
                                            v1::ListModelsResponse* response,
                                            std::function<absl::Status()> change) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status allowed = CheckAdminAccess(context->peer(), CallerIdentities(context),
                                          admin_subjects_);
  if (!allowed.ok()) {
    reactor->Finish(ToGrpc(allowed));
    return reactor;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++running_;
  }
  std::thread([this, reactor, response, change = std::move(change)] {
    const absl::Status status = change();
    for (const ModelVersionStatus& version : models_->Statuses()) {
      ToProto(version, response->add_models());
    }
    reactor->Finish(ToGrpc(status));
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
    idle_.notify_all();
  }).detach();
  return reactor;
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
