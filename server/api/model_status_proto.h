// A model version's status in its protobuf form, for Health and the admin
// service. Pure function; safe from any thread.
#ifndef MATID_SERVER_API_MODEL_STATUS_PROTO_H_
#define MATID_SERVER_API_MODEL_STATUS_PROTO_H_

#include "matid/v1/matid.pb.h"
#include "server/router/model_control.h"
#include "server/router/model_router.h"

namespace matid {

void ToProto(const ModelVersionStatus& status, v1::ModelVersionStatus* out);

}  // namespace matid

#endif  // MATID_SERVER_API_MODEL_STATUS_PROTO_H_
