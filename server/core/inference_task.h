// One preprocessed image on its way through the model, and what comes back.
// Plain data; a task is moved from the caller to the batcher's queue and
// answered exactly once through `done`, from a batcher worker thread.
#ifndef MATID_SERVER_CORE_INFERENCE_TASK_H_
#define MATID_SERVER_CORE_INFERENCE_TASK_H_

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace matid {

struct InferenceTiming {
  absl::Duration queue_wait;  // from Submit to the start of its batch
  absl::Duration inference;   // the batch's forward pass
  int batch_size = 0;
};

struct InferenceResult {
  std::vector<float> scores;  // one probability per label
  InferenceTiming timing;
};

using InferenceDone = std::function<void(absl::StatusOr<InferenceResult>)>;

struct InferenceTask {
  std::vector<float> input;                      // one preprocessed image, tensor_size() floats
  absl::Time deadline = absl::InfiniteFuture();  // not run after this
  std::function<bool()> is_cancelled;            // or empty if the caller cannot leave
  // Called exactly once, from the worker thread, once the task is accepted.
  // Gets DEADLINE_EXCEEDED or CANCELLED when the task was dropped unrun.
  InferenceDone done;
};

}  // namespace matid

#endif  // MATID_SERVER_CORE_INFERENCE_TASK_H_
