// The result message of one answered frame (common/result_message.h): its
// ids, capture time, the model that ran it, the predictions, whether it
// needs inspection (top score under the threshold) and its latency from
// capture to answer. A pure function.
#ifndef MATID_CLIENT_CAMERA_FRAME_RESULT_MESSAGE_H_
#define MATID_CLIENT_CAMERA_FRAME_RESULT_MESSAGE_H_

#include <string>

#include "absl/time/time.h"
#include "common/result_message.h"
#include "matid/v1/matid.pb.h"

namespace matid {

struct FrameOrigin {
  std::string camera_id;
  std::string boot_id;
  absl::Time captured_at;
};

ResultMessage FrameResultMessage(const v1::FrameResult& result, const FrameOrigin& origin,
                                 absl::Time answered_at, double inspection_threshold);

}  // namespace matid

#endif  // MATID_CLIENT_CAMERA_FRAME_RESULT_MESSAGE_H_
