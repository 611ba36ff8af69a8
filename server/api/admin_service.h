// The matid.v1.ModelAdmin gRPC service (callback API): lists model versions
// and applies operators' pins, loads, unloads and reloads through the
// ModelControl interface (see proto/matid/v1/admin.proto). Access checks and threads:
// AdminCalls.
// Thread-safety: gRPC calls the handlers from its own threads; the
// destructor waits for operations still running.
#ifndef MATID_SERVER_API_ADMIN_SERVICE_H_
#define MATID_SERVER_API_ADMIN_SERVICE_H_

#include <functional>
#include <string>
#include <vector>

#include "matid/v1/admin.grpc.pb.h"
#include "server/api/admin_calls.h"
#include "server/router/model_control.h"
#include "server/router/model_router.h"

namespace matid {

class AdminService final : public v1::ModelAdmin::CallbackService {
 public:
  // `models` and `control` must outlive the service.
  AdminService(const ModelRouter* models, ModelControl* control, AdminAccess admin_access);

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Reload(grpc::CallbackServerContext* context,
                                   const v1::ReloadRequest* request,
                                   v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Pin(grpc::CallbackServerContext* context, const v1::PinRequest* request,
                                v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Load(grpc::CallbackServerContext* context,
                                 const v1::VersionRequest* request,
                                 v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Unload(grpc::CallbackServerContext* context,
                                   const v1::VersionRequest* request,
                                   v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* SetShadow(grpc::CallbackServerContext* context,
                                      const v1::ShadowRequest* request,
                                      v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Promote(grpc::CallbackServerContext* context,
                                    const v1::ModelRequest* request,
                                    v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Rollback(grpc::CallbackServerContext* context,
                                     const v1::ModelRequest* request,
                                     v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetShadowReport(grpc::CallbackServerContext* context,
                                            const v1::ShadowReportRequest* request,
                                            v1::ShadowReport* response) override;

 private:
  // Checks access, then runs `change` on a thread of its own and answers
  // with its status and the versions afterwards.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                v1::ListModelsResponse* response,
                                std::function<absl::Status()> change);

  const ModelRouter* const models_;
  ModelControl* const control_;
  AdminCalls calls_;  // last: destroyed (waited for) first
};

}  // namespace matid

#endif  // MATID_SERVER_API_ADMIN_SERVICE_H_
