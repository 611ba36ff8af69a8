// The matid.v1.ModelAdmin gRPC service (callback API): lists model versions
// and applies operators' pins, loads, unloads and reloads through the
// ModelManager (see proto/matid/v1/admin.proto). Changes wait for a model
// load, so each runs on a thread of its own, never on gRPC's.
// Thread-safety: gRPC calls the handlers from its own threads; the
// destructor waits for operations still running.
#ifndef MATID_SERVER_ADMIN_SERVICE_H_
#define MATID_SERVER_ADMIN_SERVICE_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "matid/v1/admin.grpc.pb.h"
#include "server/model_manager.h"

namespace matid {

class AdminService final : public v1::ModelAdmin::CallbackService {
 public:
  // `models` must outlive the service.
  AdminService(ModelManager* models, std::vector<std::string> admin_subjects);
  ~AdminService() override;

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Reload(grpc::CallbackServerContext* context,
                                   const v1::ReloadRequest* request,
                                   v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Pin(grpc::CallbackServerContext* context,
                                const v1::PinRequest* request,
                                v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Load(grpc::CallbackServerContext* context,
                                 const v1::VersionRequest* request,
                                 v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Unload(grpc::CallbackServerContext* context,
                                   const v1::VersionRequest* request,
                                   v1::ListModelsResponse* response) override;

 private:
  // Checks access, then runs `change` on a thread of its own and answers
  // with its status and the versions afterwards.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                v1::ListModelsResponse* response,
                                std::function<absl::Status()> change);

  ModelManager* const models_;
  const std::vector<std::string> admin_subjects_;

  std::mutex mu_;  // std::mutex: visible to ThreadSanitizer
  std::condition_variable idle_;
  int running_ = 0;  // guarded by mu_
};

}  // namespace matid

#endif  // MATID_SERVER_ADMIN_SERVICE_H_
