#include "server/repository/version_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace matid {
namespace {

// What a version is to the plan: available, failed (not to be tried again
// now) or to be loaded.
enum class Standing { kAvailable, kFailed, kToLoad };

class Planner {
 public:
  Planner(const RepositoryModel& model, const std::map<int64_t, HeldVersion>& held,
          const std::string& repository)
      : model_(model), held_(held), repository_(repository) {}

  Standing StandingOf(int64_t version) const {
    const auto found = held_.find(version);
    if (found == held_.end()) return Standing::kToLoad;
    return found->second.available ? Standing::kAvailable : Standing::kFailed;
  }
  bool HasFolder(int64_t version) const { return ContainsVersion(model_.versions, version); }
  std::string Folder(int64_t version) const {
    return VersionDir(repository_, model_.name, version);
  }
  std::string FailedReason(int64_t version) const {
    const auto found = held_.find(version);
    return found == held_.end() ? "" : found->second.reason;
  }

  // The versions the policy wants served that are available: the newest
  // available one (latest) or each listed one. Sets plan->load to the first
  // one that must be tried first.
  std::vector<int64_t> Wanted(VersionPlan* plan) const {
    std::vector<int64_t> wanted;
    if (model_.policy.latest()) {
      for (auto version = model_.versions.rbegin(); version != model_.versions.rend(); ++version) {
        const Standing standing = StandingOf(*version);
        if (standing == Standing::kFailed) continue;
        if (standing == Standing::kToLoad) plan->load = *version;
        if (standing == Standing::kAvailable) wanted.push_back(*version);
        break;
      }
      return wanted;
    }
    for (int64_t version : model_.policy.versions) {
      if (!HasFolder(version)) {
        plan->fail[version] = absl::StrCat("version_policy.json names version ", version, " but ",
                                           Folder(version), " does not exist");
        continue;
      }
      const Standing standing = StandingOf(version);
      if (standing == Standing::kAvailable) wanted.push_back(version);
      if (standing == Standing::kToLoad && plan->load == 0) plan->load = version;
    }
    return wanted;
  }

  // The rollback window's target: kept loaded, routed to only when named.
  int64_t RollbackTarget(const std::vector<int64_t>& wanted, VersionPlan* plan) const {
    const int64_t target = model_.policy.rollback.version;
    if (target == 0 || ContainsVersion(wanted, target)) return target;
    if (!HasFolder(target)) return 0;
    const Standing standing = StandingOf(target);
    if (standing == Standing::kToLoad && plan->load == 0) plan->load = target;
    return standing == Standing::kAvailable ? target : 0;
  }

  // The policy's shadow version: loaded beside the serving ones, never routed
  // to by default.
  void Shadow(const std::vector<int64_t>& wanted, VersionPlan* plan) const {
    const int64_t shadow = model_.policy.shadow_version;
    if (shadow == 0 || ContainsVersion(wanted, shadow)) return;
    if (!HasFolder(shadow)) {
      plan->shadow_problem =
          absl::StrCat("shadow version ", shadow, ": ", Folder(shadow), " does not exist");
      return;
    }
    switch (StandingOf(shadow)) {
      case Standing::kAvailable:
        plan->shadow_version = shadow;
        return;
      case Standing::kToLoad:
        if (plan->load == 0) plan->load = shadow;
        return;
      case Standing::kFailed:
        plan->shadow_problem =
            absl::StrCat("shadow version ", shadow, " FAILED: ", FailedReason(shadow));
        return;
    }
  }

  // Held versions whose folder is gone (a FAILED one the plan marks FAILED
  // again for its missing folder stays, to say so).
  std::vector<int64_t> Gone(const VersionPlan& plan) const {
    std::vector<int64_t> gone;
    for (const auto& [version, held] : held_) {
      if (!HasFolder(version) && (held.available || plan.fail.count(version) == 0)) {
        gone.push_back(version);
      }
    }
    return gone;
  }

 private:
  const RepositoryModel& model_;
  const std::map<int64_t, HeldVersion>& held_;
  const std::string& repository_;
};

}  // namespace

VersionPlan PlanVersions(const RepositoryModel& model, const std::map<int64_t, HeldVersion>& held,
                         int64_t serving_default, const std::string& repository) {
  VersionPlan plan;
  if (!model.policy_status.ok()) {
    plan.policy_problem = std::string(model.policy_status.message());
    return plan;
  }
  const Planner planner(model, held, repository);
  std::vector<int64_t> wanted = planner.Wanted(&plan);
  const int64_t rollback_target = planner.RollbackTarget(wanted, &plan);
  planner.Shadow(wanted, &plan);
  plan.retire_gone = planner.Gone(plan);
  if (plan.load != 0) {
    plan.shadow_version = 0;
    plan.shadow_problem.clear();
    return plan;
  }
  if (wanted.empty() && serving_default != 0 && planner.HasFolder(serving_default)) {
    wanted.push_back(serving_default);  // nothing wanted is available: the old one keeps serving
  }
  plan.default_version = wanted.empty() ? 0 : *std::max_element(wanted.begin(), wanted.end());
  const int64_t shadow = model.policy.shadow_version;
  if (shadow != 0 && shadow == plan.default_version) {
    plan.shadow_version = 0;
    plan.shadow_problem = absl::StrCat("shadow version ", shadow,
                                       " is the default version: nothing to compare it with");
  }
  plan.rollback_target = rollback_target;
  for (const auto& [version, version_held] : held) {
    if (version_held.available && planner.HasFolder(version) && !ContainsVersion(wanted, version) &&
        version != plan.shadow_version && version != rollback_target) {
      plan.retire.push_back(version);
    }
  }
  std::sort(wanted.begin(), wanted.end());
  plan.serve = std::move(wanted);
  return plan;
}

}  // namespace matid
