#include "server/api/admin_service.h"

#include <optional>
#include <utility>

#include "server/api/model_status_proto.h"
#include "server/shadow/promotion_rules_proto.h"

namespace matid {

AdminService::AdminService(const ModelRouter* models, ModelControl* control,
                           AdminAccess admin_access)
    : models_(models), control_(control), calls_(std::move(admin_access)) {}

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
    control_->ReloadAndWait();
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::Pin(grpc::CallbackServerContext* context,
                                            const v1::PinRequest* request,
                                            v1::ListModelsResponse* response) {
  std::vector<int64_t> versions(request->versions().begin(), request->versions().end());
  return Run(context, response,
             [this, model = request->model(), versions] { return control_->Pin(model, versions); });
}

grpc::ServerUnaryReactor* AdminService::Load(grpc::CallbackServerContext* context,
                                             const v1::VersionRequest* request,
                                             v1::ListModelsResponse* response) {
  return Run(context, response, [this, model = request->model(), version = request->version()] {
    return control_->Load(model, version);
  });
}

grpc::ServerUnaryReactor* AdminService::Unload(grpc::CallbackServerContext* context,
                                               const v1::VersionRequest* request,
                                               v1::ListModelsResponse* response) {
  return Run(context, response, [this, model = request->model(), version = request->version()] {
    return control_->Unload(model, version);
  });
}

grpc::ServerUnaryReactor* AdminService::SetShadow(grpc::CallbackServerContext* context,
                                                  const v1::ShadowRequest* request,
                                                  v1::ListModelsResponse* response) {
  return Run(
      context, response,
      [this, model = request->model(), version = request->version(), fraction = request->fraction(),
       promote_when = request->has_promote_when()
                          ? std::optional<PromotionRule>(FromProto(request->promote_when()))
                          : std::nullopt,
       rollback_when = request->has_rollback_when()
                           ? std::optional<RollbackRule>(FromProto(request->rollback_when()))
                           : std::nullopt] {
        return control_->SetShadow(model, version, fraction, promote_when, rollback_when);
      });
}

grpc::ServerUnaryReactor* AdminService::Promote(grpc::CallbackServerContext* context,
                                                const v1::ModelRequest* request,
                                                v1::ListModelsResponse* response) {
  return Run(context, response,
             [this, model = request->model()] { return control_->Promote(model); });
}

grpc::ServerUnaryReactor* AdminService::Rollback(grpc::CallbackServerContext* context,
                                                 const v1::ModelRequest* request,
                                                 v1::ListModelsResponse* response) {
  return Run(context, response,
             [this, model = request->model()] { return control_->Rollback(model); });
}

grpc::ServerUnaryReactor* AdminService::GetShadowReport(grpc::CallbackServerContext* context,
                                                        const v1::ShadowReportRequest* request,
                                                        v1::ShadowReport* response) {
  return calls_.Run(context, [this, model = request->model(), response] {
    absl::StatusOr<ShadowReport> report = control_->Shadow(model);
    if (!report.ok()) return report.status();
    const ShadowSnapshot& c = report->comparison;
    response->set_model(report->model);
    response->set_primary_version(report->primary_version);
    response->set_shadow_version(report->shadow_version);
    response->set_fraction(report->fraction);
    response->set_compared(c.compared);
    response->set_agreements(c.agreements);
    response->set_agreement(c.agreement());
    for (const std::string& label : report->labels) response->add_labels(label);
    for (const auto& row : c.confusion) {
      auto* out = response->add_confusion();
      for (int64_t n : row) out->add_shadow(n);
    }
    response->set_mean_score_difference(
        c.compared > 0 ? c.score_difference_sum / static_cast<double>(c.compared) : 0.0);
    response->set_shadow_latency_p50_ms(absl::ToDoubleMilliseconds(c.latency_p50));
    response->set_shadow_latency_p99_ms(absl::ToDoubleMilliseconds(c.latency_p99));
    for (const auto& [reason, n] : c.skipped) (*response->mutable_skipped())[reason] = n;
    response->set_disagreements_dir(report->disagreements_dir);
    response->set_disagreements_saved(c.frames_saved);
    for (const std::string& path : c.recent_frames) response->add_recent_disagreements(path);
    for (const auto& [reason, n] : c.frames_not_saved) {
      (*response->mutable_disagreements_not_saved())[reason] = n;
    }
    if (report->promote_when.has_value()) {
      ToProto(*report->promote_when, response->mutable_promote_when());
    }
    return absl::OkStatus();
  });
}

}  // namespace matid
