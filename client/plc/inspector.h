// One inspection on demand: capture the next frame from a FrameSource,
// shrink it to the model's input (learned from the server's Health, again
// after a failure), and classify it with Classify under a deadline. Errors
// come back as the status the PLC's error code is chosen from:
// UNAVAILABLE (server down), DEADLINE_EXCEEDED, FAILED_PRECONDITION (no
// frame), INVALID_ARGUMENT (image refused).
// Thread-safety: Inspect from one thread at a time.
#ifndef MATID_CLIENT_PLC_INSPECTOR_H_
#define MATID_CLIENT_PLC_INSPECTOR_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/camera/frame_encoding.h"
#include "client/camera/frame_source.h"
#include "matid/v1/matid.grpc.pb.h"

namespace matid::plc {

struct InspectorOptions {
  int top_k = 3;
  int jpeg_quality = 90;
  absl::Duration timeout = absl::Seconds(2);  // from start to answer, capture included
};

// One classified frame.
struct Inspection {
  absl::Time captured_at;
  v1::ClassifyResponse response;
};

class Inspector {
 public:
  Inspector(const InspectorOptions& options, std::unique_ptr<FrameSource> source,
            std::shared_ptr<grpc::Channel> channel);

  absl::StatusOr<Inspection> Inspect();

 private:
  void LearnModelFit(absl::Time deadline);

  const InspectorOptions options_;
  const std::unique_ptr<FrameSource> source_;
  const std::unique_ptr<v1::Classifier::Stub> stub_;
  std::optional<ModelFit> fit_;
};

}  // namespace matid::plc

#endif  // MATID_CLIENT_PLC_INSPECTOR_H_
