#include "server/shadow/promotion_rules_proto.h"

namespace matid {

PromotionRule FromProto(const v1::PromotionRule& rule) {
  PromotionRule out;
  out.min_compared = rule.min_compared();
  out.min_agreement = rule.min_agreement();
  out.max_shadow_p99 = absl::Milliseconds(rule.max_shadow_p99_ms());
  return out;
}

RollbackRule FromProto(const v1::RollbackRule& rule) {
  RollbackRule out;
  if (rule.has_window_seconds()) out.window = absl::Seconds(rule.window_seconds());
  if (rule.has_max_error_rate()) out.max_error_rate = rule.max_error_rate();
  if (rule.has_low_confidence_below()) {
    out.low_confidence_below = static_cast<float>(rule.low_confidence_below());
  }
  if (rule.has_max_low_confidence_ratio()) {
    out.max_low_confidence_ratio = rule.max_low_confidence_ratio();
  }
  if (rule.has_min_images()) out.min_images = rule.min_images();
  return out;
}

void ToProto(const PromotionRule& rule, v1::PromotionRule* out) {
  out->set_min_compared(rule.min_compared);
  out->set_min_agreement(rule.min_agreement);
  out->set_max_shadow_p99_ms(absl::ToDoubleMilliseconds(rule.max_shadow_p99));
}

}  // namespace matid
