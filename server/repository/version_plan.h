// What one model's versions should be, decided from the repository's folders
// and policy and from what the manager holds: a pure function, tested with
// tables (tests/version_plan_test.cc). The manager acts on a plan one load at
// a time and plans again with the outcome, until the plan asks for no load;
// then it routes and retires as the plan says (see model_manager.h). Planning
// twice on the same inputs gives the same plan. Plain values: safe from any
// thread.
#ifndef MATID_SERVER_REPOSITORY_VERSION_PLAN_H_
#define MATID_SERVER_REPOSITORY_VERSION_PLAN_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "server/repository/model_repository.h"

namespace matid {

// A version the manager holds. A version not listed may be loaded.
struct HeldVersion {
  bool available = false;  // loaded and routable; otherwise FAILED and not to be tried again now
  std::string reason;      // why it FAILED
};

struct VersionPlan {
  // Not empty when the policy cannot be read: nothing is to change.
  std::string policy_problem;
  // Versions whose folder is gone: out of routing and released first.
  std::vector<int64_t> retire_gone;
  // Versions to mark FAILED next, with the reason (named by the policy but
  // without a folder).
  std::map<int64_t, std::string> fail;
  // The next version to load (0: none): load it, then plan again. Nothing
  // below is set, and nothing is routed, before the plan asks for no load.
  int64_t load = 0;
  // Once nothing is to load: the loaded versions no longer wanted (retired
  // as the default changes, in one step), the versions routed to by name,
  // the one that serves requests naming no version (0: none), the shadow
  // beside it (0: none) or why the policy's shadow does not run, and the
  // rollback window's target kept loaded (0: none).
  std::vector<int64_t> retire;
  std::vector<int64_t> serve;
  int64_t default_version = 0;
  int64_t shadow_version = 0;
  std::string shadow_problem;
  int64_t rollback_target = 0;
};

// `held`: the versions the manager holds; `serving_default`: the version that
// serves now (0: none), kept when nothing the policy wants is available;
// `repository`: for the folder names in reasons.
VersionPlan PlanVersions(const RepositoryModel& model, const std::map<int64_t, HeldVersion>& held,
                         int64_t serving_default, const std::string& repository);

}  // namespace matid

#endif  // MATID_SERVER_REPOSITORY_VERSION_PLAN_H_
