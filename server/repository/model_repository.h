// Reads a model repository's layout: REPOSITORY/<model>/<version>/ with
// positive integer version folders (anything else, such as a publish's
// `.publishing-*` staging folder, is ignored) and an optional
// REPOSITORY/<model>/version_policy.json saying which versions serve.
// Reads the file system only; pure functions, safe from any thread.
#ifndef MATID_SERVER_REPOSITORY_MODEL_REPOSITORY_H_
#define MATID_SERVER_REPOSITORY_MODEL_REPOSITORY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/shadow/promotion_rules.h"

namespace matid {

// Which versions of a model serve. Empty `versions`: the latest, i.e. the
// highest version that loads. Otherwise exactly those versions (ascending);
// the highest of them is the default. A shadow version (0: none) is loaded
// too and classifies `shadow_fraction` of the default version's images
// beside it, for comparison only (see shadow_tap.h); with a promotion rule
// it is promoted by itself, and a promotion leaves a rollback window open
// (see promotion_rules.h).
struct VersionPolicy {
  std::vector<int64_t> versions;
  int64_t shadow_version = 0;
  double shadow_fraction = 0;
  std::optional<PromotionRule> promote_when;  // with a shadow only
  RollbackRule rollback_when;                 // the rule a promotion of the shadow starts
  RollbackWindow rollback;                    // version 0: none open

  bool latest() const { return versions.empty(); }
};

// The policy as version_policy.json text (one line, newline-terminated).
std::string VersionPolicyJson(const VersionPolicy& policy);

inline constexpr char kVersionPolicyFile[] = "version_policy.json";

// Parses version_policy.json text; INVALID_ARGUMENT naming what is wrong.
absl::StatusOr<VersionPolicy> ParseVersionPolicy(absl::string_view json);

// Whether `versions` holds `version`.
inline bool ContainsVersion(const std::vector<int64_t>& versions, int64_t version) {
  for (int64_t v : versions) {
    if (v == version) return true;
  }
  return false;
}

struct RepositoryModel {
  std::string name;
  std::vector<int64_t> versions;  // ascending
  VersionPolicy policy;
  // Not OK when version_policy.json is unreadable or malformed (`policy`
  // is then empty): the manager keeps serving what it serves and says why.
  absl::Status policy_status;
};

// Every model folder of `root`, by name. NOT_FOUND when `root` is not a
// readable folder.
absl::StatusOr<std::vector<RepositoryModel>> ScanModelRepository(const std::string& root);

std::string VersionDir(const std::string& root, absl::string_view model, int64_t version);

// What a version folder holds (names, sizes, modification times): a
// FAILED version is tried again only when this changes, for example when a
// slow copy into it has finished.
std::string VersionDirStamp(const std::string& version_dir);

}  // namespace matid

#endif  // MATID_SERVER_REPOSITORY_MODEL_REPOSITORY_H_
