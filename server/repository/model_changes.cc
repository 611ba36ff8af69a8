// ModelManager: operators' changes (ModelControl): each edits the model's
// version_policy.json through the policy store's one read-modify-write,
// rescans and waits.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "server/repository/model_manager.h"

namespace matid {

absl::StatusOr<RepositoryModel> ModelManager::UpdatePolicy(const std::string& model,
                                                           const PolicyStore::Change& change) {
  if (policies_ == nullptr) {
    return absl::FailedPreconditionError(
        "the server serves one model from --model_dir: start it with --model_repository");
  }
  return policies_->Update(model, change);
}

int64_t ModelManager::DefaultVersion(const std::string& model) const {
  return table_.DefaultVersion(model);
}

absl::Status ModelManager::Pin(const std::string& model, std::vector<int64_t> versions) {
  return ChangeVersions(model, [&versions](const RepositoryModel&) { return versions; });
}

absl::Status ModelManager::Load(const std::string& model, int64_t version) {
  return ChangeVersions(model, [&](const RepositoryModel& scanned) {
    std::vector<int64_t> versions = scanned.policy.versions;
    const int64_t serving = DefaultVersion(model);
    if (scanned.policy.latest() && serving != 0) versions.push_back(serving);
    versions.push_back(version);
    return versions;
  });
}

absl::Status ModelManager::Unload(const std::string& model, int64_t version) {
  return ChangeVersions(
      model,
      [&](const RepositoryModel& scanned) -> absl::StatusOr<std::optional<std::vector<int64_t>>> {
        if (scanned.policy.latest()) {
          if (DefaultVersion(model) != version) return std::nullopt;  // not served
          return absl::FailedPreconditionError(
              absl::StrCat("model '", model, "' serves its latest version ", version,
                           " by policy: pin the versions to serve instead (matid-admin pin)"));
        }
        std::vector<int64_t> versions = scanned.policy.versions;
        versions.erase(std::remove(versions.begin(), versions.end(), version), versions.end());
        if (versions.empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "version ", version, " is the only one model '", model,
              "' serves: pin another first, or go back to the latest (matid-admin pin ", model,
              ")"));
        }
        return versions;
      });
}

absl::Status ModelManager::ChangeVersions(const std::string& model, const VersionChoice& choose) {
  std::optional<std::vector<int64_t>> versions;
  auto scanned = UpdatePolicy(
      model, [&](const RepositoryModel& scanned) -> absl::StatusOr<std::optional<VersionPolicy>> {
        auto chosen = choose(scanned);
        if (!chosen.ok()) return chosen.status();
        if (!chosen->has_value()) return std::nullopt;
        std::vector<int64_t> wanted = **std::move(chosen);
        for (int64_t version : wanted) {
          if (!ContainsVersion(scanned.versions, version)) {
            return absl::NotFoundError(
                absl::StrCat("model '", model, "' has no version folder ", version,
                             "; versions: ", absl::StrJoin(scanned.versions, ", ")));
          }
        }
        std::sort(wanted.begin(), wanted.end());
        wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
        VersionPolicy policy = scanned.policy;  // its shadow stays as it is
        policy.versions = wanted;
        versions = std::move(wanted);
        return policy;
      });
  if (!scanned.ok()) return scanned.status();
  if (!versions.has_value()) return absl::OkStatus();
  ReloadAndWait();
  // Back to latest always succeeds: it serves the highest version that loads.
  for (const ModelVersionStatus& status : Statuses()) {
    if (status.model == model && status.state == ModelVersionState::kFailed &&
        ContainsVersion(*versions, std::stoll(status.version))) {
      // Put the policy back, so the file says what serves, unless another
      // change has written it since.
      bool restored = false;
      const auto restore =
          UpdatePolicy(model, [&](const RepositoryModel& now) -> std::optional<VersionPolicy> {
            if (!scanned->policy_status.ok() || now.policy.versions != *versions) {
              return std::nullopt;
            }
            restored = true;
            return scanned->policy;
          });
      if (restore.ok() && restored) ReloadAndWait();
      return absl::FailedPreconditionError(absl::StrCat("model '", model, "' version ",
                                                        status.version, " FAILED: ", status.reason,
                                                        " (version_policy.json left as it was)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ModelManager::SetShadow(const std::string& model, int64_t version, double fraction,
                                     std::optional<PromotionRule> promote_when,
                                     std::optional<RollbackRule> rollback_when) {
  if (promote_when.has_value()) {
    if (absl::Status valid = ValidatePromotionRule(*promote_when); !valid.ok()) return valid;
  }
  if (rollback_when.has_value()) {
    if (absl::Status valid = ValidateRollbackRule(*rollback_when); !valid.ok()) return valid;
  }
  auto scanned = UpdatePolicy(
      model, [&](const RepositoryModel& scanned) -> absl::StatusOr<std::optional<VersionPolicy>> {
        if (version != 0 && !ContainsVersion(scanned.versions, version)) {
          return absl::NotFoundError(
              absl::StrCat("model '", model, "' has no version folder ", version,
                           "; versions: ", absl::StrJoin(scanned.versions, ", ")));
        }
        if (version != 0 && !(fraction > 0 && fraction <= 1)) {
          return absl::InvalidArgumentError(
              absl::StrCat("shadow fraction ", fraction, " must be in (0, 1]"));
        }
        VersionPolicy policy = scanned.policy;
        policy.shadow_version = version;
        policy.shadow_fraction = version != 0 ? fraction : 0;
        policy.promote_when = version != 0 ? promote_when : std::nullopt;
        policy.rollback_when =
            version != 0 && rollback_when.has_value() ? *rollback_when : RollbackRule();
        return policy;
      });
  if (!scanned.ok()) return scanned.status();
  ReloadAndWait();
  if (version == 0) return absl::OkStatus();
  const std::optional<std::string> problem = promotions_.ShadowNotRunning(model, version);
  if (!problem.has_value()) return absl::OkStatus();
  if (scanned->policy_status.ok()) {
    const auto restored = UpdatePolicy(
        model,
        [&](const RepositoryModel&) -> std::optional<VersionPolicy> { return scanned->policy; });
    if (restored.ok()) ReloadAndWait();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("model '", model, "': ", *problem, " (version_policy.json left as it was)"));
}

}  // namespace matid
