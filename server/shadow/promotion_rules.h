// When a shadow version is promoted by itself, and when a promoted version
// is rolled back: the rules a model's version_policy.json gives (see
// model_metadata.proto's PromotionRule and RollbackRule) and the pure
// decisions on the figures measured so far. The model manager reads the
// figures, asks these functions, and acts.
// Pure functions and plain structs: safe from any thread.
#ifndef MATID_SERVER_SHADOW_PROMOTION_RULES_H_
#define MATID_SERVER_SHADOW_PROMOTION_RULES_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/core/version_outcomes.h"
#include "server/shadow/shadow_comparison.h"

namespace matid {

// Promote the shadow once all hold.
struct PromotionRule {
  int64_t min_compared = 0;
  double min_agreement = 0;
  absl::Duration max_shadow_p99 = absl::InfiniteDuration();
};

// Watches a promoted version for `window`; see RollbackDue.
struct RollbackRule {
  absl::Duration window = absl::Minutes(10);
  double max_error_rate = 0.01;
  float low_confidence_below = 0.5f;
  double max_low_confidence_ratio = 0.2;
  int64_t min_images = 100;

  bool operator==(const RollbackRule& other) const {
    return window == other.window && max_error_rate == other.max_error_rate &&
           low_confidence_below == other.low_confidence_below &&
           max_low_confidence_ratio == other.max_low_confidence_ratio &&
           min_images == other.min_images;
  }
};

// OK, or INVALID_ARGUMENT naming the field out of range.
absl::Status ValidatePromotionRule(const PromotionRule& rule);
absl::Status ValidateRollbackRule(const RollbackRule& rule);

// An open rollback window: `version` stays loaded until `until` as the
// target of a rollback from `promoted_version`.
struct RollbackWindow {
  int64_t version = 0;  // 0: no window
  int64_t promoted_version = 0;
  absl::Time until;
  RollbackRule rule;
};

// Why the shadow should be promoted now ("612 compared >= 500, agreement
// 0.9912 >= 0.98, shadow p99 12.1 ms <= 50 ms"), or nothing while the rule
// does not hold yet.
std::optional<std::string> PromotionDue(const PromotionRule& rule, const ShadowSnapshot& shadow);

// Why the promoted version should be rolled back ("error rate 0.0312 >
// 0.01 over 160 images"), or nothing: `outcomes` are the version's since
// its promotion. Decides only once it has run min_images images.
std::optional<std::string> RollbackDue(const RollbackRule& rule, const OutcomeSnapshot& outcomes);

}  // namespace matid

#endif  // MATID_SERVER_SHADOW_PROMOTION_RULES_H_
