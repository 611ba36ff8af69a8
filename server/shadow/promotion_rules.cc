#include "server/shadow/promotion_rules.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace matid {
namespace {

std::string Milliseconds(absl::Duration d) {
  return absl::StrFormat("%.1f ms", absl::ToDoubleMilliseconds(d));
}

}  // namespace

absl::Status ValidatePromotionRule(const PromotionRule& rule) {
  if (rule.min_compared < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("promote_when.min_compared is ", rule.min_compared, "; must be >= 1"));
  }
  if (!(rule.min_agreement >= 0 && rule.min_agreement <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("promote_when.min_agreement is ", rule.min_agreement, "; must be in [0, 1]"));
  }
  if (!(rule.max_shadow_p99 > absl::ZeroDuration())) {
    return absl::InvalidArgumentError("promote_when.max_shadow_p99_ms must be > 0");
  }
  return absl::OkStatus();
}

absl::Status ValidateRollbackRule(const RollbackRule& rule) {
  if (!(rule.window > absl::ZeroDuration()) || rule.window > absl::Hours(24 * 30)) {
    return absl::InvalidArgumentError(absl::StrCat("rollback_when.window_seconds is ",
                                                   absl::ToDoubleSeconds(rule.window),
                                                   "; must be in (0, 2592000] (30 days)"));
  }
  if (!(rule.max_error_rate >= 0 && rule.max_error_rate <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("rollback_when.max_error_rate is ",
                                                   rule.max_error_rate, "; must be in [0, 1]"));
  }
  if (!(rule.low_confidence_below >= 0 && rule.low_confidence_below <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("rollback_when.low_confidence_below is ",
                                                   rule.low_confidence_below,
                                                   "; must be in [0, 1] (a top-1 score)"));
  }
  if (!(rule.max_low_confidence_ratio >= 0 && rule.max_low_confidence_ratio <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("rollback_when.max_low_confidence_ratio is ",
                                                   rule.max_low_confidence_ratio,
                                                   "; must be in [0, 1]"));
  }
  if (rule.min_images < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("rollback_when.min_images is ", rule.min_images, "; must be >= 1"));
  }
  return absl::OkStatus();
}

std::optional<std::string> PromotionDue(const PromotionRule& rule, const ShadowSnapshot& shadow) {
  if (shadow.compared < rule.min_compared || shadow.agreement() < rule.min_agreement ||
      shadow.latency_p99 > rule.max_shadow_p99) {
    return std::nullopt;
  }
  return absl::StrFormat("%d compared >= %d, agreement %.4f >= %g, shadow p99 %s <= %s",
                         shadow.compared, rule.min_compared, shadow.agreement(), rule.min_agreement,
                         Milliseconds(shadow.latency_p99), Milliseconds(rule.max_shadow_p99));
}

std::optional<std::string> RollbackDue(const RollbackRule& rule, const OutcomeSnapshot& outcomes) {
  const int64_t ran = outcomes.answered + outcomes.failed;
  if (ran < rule.min_images || ran <= 0) return std::nullopt;
  const double error_rate = static_cast<double>(outcomes.failed) / static_cast<double>(ran);
  if (error_rate > rule.max_error_rate) {
    return absl::StrFormat("error rate %.4f > %g over %d images", error_rate, rule.max_error_rate,
                           ran);
  }
  if (outcomes.answered > 0) {
    const double low = static_cast<double>(outcomes.AnsweredBelow(rule.low_confidence_below)) /
                       static_cast<double>(outcomes.answered);
    if (low > rule.max_low_confidence_ratio) {
      return absl::StrFormat(
          "low-confidence ratio %.4f > %g (top-1 score under %g) over %d answers", low,
          rule.max_low_confidence_ratio, rule.low_confidence_below, outcomes.answered);
    }
  }
  return std::nullopt;
}

}  // namespace matid
