// ModelManager: operators' changes (ModelControl): each edits the model's
// version_policy.json under policy_mu_ (ChangeVersions), rescans and waits.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/atomic_file.h"
#include "common/log.h"
#include "server/repository/model_manager.h"

namespace matid {

absl::StatusOr<RepositoryModel> ModelManager::ScanOne(const std::string& model) const {
  if (fixed_) {
    return absl::FailedPreconditionError(
        "the server serves one model from --model_dir: start it with --model_repository");
  }
  auto scan = ScanModelRepository(options_.repository);
  if (!scan.ok()) return scan.status();
  std::vector<std::string> names;
  for (RepositoryModel& candidate : *scan) {
    if (candidate.name == model) return std::move(candidate);
    names.push_back(candidate.name);
  }
  return absl::NotFoundError(absl::StrCat("model '", model, "' is not in ", options_.repository,
                                          "; models: ", absl::StrJoin(names, ", ")));
}

absl::Status ModelManager::WritePolicy(const std::string& model,
                                       const VersionPolicy& policy) const {
  const std::string path = absl::StrCat(options_.repository, "/", model, "/", kVersionPolicyFile);
  const std::string text = VersionPolicyJson(policy);
  if (absl::Status written = WriteFileAtomically(path, text); !written.ok()) return written;
  LogInfo("%s",
          absl::StrCat("model ", model, ": ", path, " now says ", text.substr(0, text.size() - 1)));
  return absl::OkStatus();
}

int64_t ModelManager::DefaultVersion(const std::string& model) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto entry = models_.find(model);
  return entry == models_.end() ? 0 : entry->second.default_version;
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
  std::unique_lock<std::mutex> policy_lock(policy_mu_);
  auto scanned = ScanOne(model);
  if (!scanned.ok()) return scanned.status();
  auto chosen = choose(*scanned);
  if (!chosen.ok()) return chosen.status();
  if (!chosen->has_value()) return absl::OkStatus();
  std::vector<int64_t> versions = **std::move(chosen);
  for (int64_t version : versions) {
    if (!ContainsVersion(scanned->versions, version)) {
      return absl::NotFoundError(
          absl::StrCat("model '", model, "' has no version folder ", version,
                       "; versions: ", absl::StrJoin(scanned->versions, ", ")));
    }
  }
  std::sort(versions.begin(), versions.end());
  versions.erase(std::unique(versions.begin(), versions.end()), versions.end());
  VersionPolicy policy = scanned->policy;  // its shadow stays as it is
  policy.versions = versions;
  absl::Status written = WritePolicy(model, policy);
  policy_lock.unlock();
  if (!written.ok()) return written;
  ReloadAndWait();
  // Back to latest always succeeds: it serves the highest version that loads.
  for (const ModelVersionStatus& status : Statuses()) {
    if (status.model == model && status.state == ModelVersionState::kFailed &&
        ContainsVersion(versions, std::stoll(status.version))) {
      // Put the policy back, so the file says what serves, unless another
      // change has written it since.
      bool restored = false;
      {
        std::lock_guard<std::mutex> restore_lock(policy_mu_);
        auto now = ScanOne(model);
        restored = scanned->policy_status.ok() && now.ok() && now->policy.versions == versions &&
                   WritePolicy(model, scanned->policy).ok();
      }
      if (restored) ReloadAndWait();  // not under policy_mu_: the rules take it
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
  std::unique_lock<std::mutex> policy_lock(policy_mu_);
  auto scanned = ScanOne(model);
  if (!scanned.ok()) return scanned.status();
  if (version != 0 && !ContainsVersion(scanned->versions, version)) {
    return absl::NotFoundError(
        absl::StrCat("model '", model, "' has no version folder ", version,
                     "; versions: ", absl::StrJoin(scanned->versions, ", ")));
  }
  if (version != 0 && !(fraction > 0 && fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("shadow fraction ", fraction, " must be in (0, 1]"));
  }
  VersionPolicy policy = scanned->policy;
  policy.shadow_version = version;
  policy.shadow_fraction = version != 0 ? fraction : 0;
  policy.promote_when = version != 0 ? promote_when : std::nullopt;
  policy.rollback_when =
      version != 0 && rollback_when.has_value() ? *rollback_when : RollbackRule();
  absl::Status written = WritePolicy(model, policy);
  policy_lock.unlock();
  if (!written.ok()) return written;
  ReloadAndWait();
  if (version == 0) return absl::OkStatus();
  std::string problem;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Entry& entry = models_[model];
    if (entry.tap != nullptr && entry.shadow_version == version) return absl::OkStatus();
    problem = entry.shadow_problem.empty() ? "it did not start" : entry.shadow_problem;
  }
  if (scanned->policy_status.ok() && WritePolicy(model, scanned->policy).ok()) ReloadAndWait();
  return absl::FailedPreconditionError(
      absl::StrCat("model '", model, "': ", problem, " (version_policy.json left as it was)"));
}

absl::StatusOr<ShadowReport> ModelManager::Shadow(const std::string& model) const {
  std::shared_ptr<const ShadowTap> tap;
  ShadowReport report;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto found = models_.find(model);
    if (found == models_.end()) {
      return absl::NotFoundError(absl::StrCat("model '", model, "' is not served"));
    }
    const Entry& entry = found->second;
    tap = entry.tap;
    auto primary = entry.tap_primary.lock();
    auto shadow = entry.tap_shadow.lock();
    if (tap == nullptr || primary == nullptr || shadow == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", model, "' has no shadow version",
                       entry.shadow_problem.empty() ? " (set one with matid-admin shadow)"
                                                    : absl::StrCat(": ", entry.shadow_problem)));
    }
    report.model = model;
    report.primary_version = primary->identity().version;
    report.shadow_version = shadow->identity().version;
    report.fraction = entry.shadow_fraction;
    report.labels = primary->info().labels;
    report.promote_when = entry.promote_when;
    if (disagreements_ != nullptr) report.disagreements_dir = disagreements_->dir();
  }
  report.comparison = tap->comparison().Snapshot();
  return report;
}

}  // namespace matid
