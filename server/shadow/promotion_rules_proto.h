// Promotion and rollback rules (promotion_rules.h) to and from their
// protobuf form (matid/v1/model_metadata.proto), for version_policy.json and
// the admin service. Unset rollback fields take the defaults. Pure
// functions; safe from any thread.
#ifndef MATID_SERVER_SHADOW_PROMOTION_RULES_PROTO_H_
#define MATID_SERVER_SHADOW_PROMOTION_RULES_PROTO_H_

#include "matid/v1/model_metadata.pb.h"
#include "server/shadow/promotion_rules.h"

namespace matid {

PromotionRule FromProto(const v1::PromotionRule& rule);
RollbackRule FromProto(const v1::RollbackRule& rule);
void ToProto(const PromotionRule& rule, v1::PromotionRule* out);

}  // namespace matid

#endif  // MATID_SERVER_SHADOW_PROMOTION_RULES_PROTO_H_
