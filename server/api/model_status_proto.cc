#include "server/api/model_status_proto.h"

namespace matid {
namespace {

v1::ModelVersionStatus::State ToProtoState(ModelVersionState state) {
  switch (state) {
    case ModelVersionState::kLoading:
      return v1::ModelVersionStatus::LOADING;
    case ModelVersionState::kAvailable:
      return v1::ModelVersionStatus::AVAILABLE;
    case ModelVersionState::kUnloading:
      return v1::ModelVersionStatus::UNLOADING;
    case ModelVersionState::kFailed:
      return v1::ModelVersionStatus::FAILED;
  }
  return v1::ModelVersionStatus::STATE_UNSPECIFIED;
}

}  // namespace

void ToProto(const ModelVersionStatus& status, v1::ModelVersionStatus* out) {
  out->set_name(status.model);
  out->set_version(status.version);
  out->set_state(ToProtoState(status.state));
  out->set_reason(status.reason);
  out->set_is_default(status.is_default);
  out->set_is_shadow(status.is_shadow);
  out->set_is_rollback_target(status.is_rollback_target);
  out->set_variant(status.identity.variant);
  out->set_sha256(status.identity.sha256);
}

}  // namespace matid
