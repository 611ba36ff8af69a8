// The narrow interface between serving and the model runtime. The LibTorch
// implementation (torch_backend.h) is the only code that sees torch headers;
// tests use a fake. Infer() may be called from several threads at once (the
// batcher's workers) and must be safe for that; info() is immutable and may be
// read from any thread.
#ifndef MATID_SERVER_BACKEND_MODEL_BACKEND_H_
#define MATID_SERVER_BACKEND_MODEL_BACKEND_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/backend/model_info.h"

namespace matid {

class ModelBackend {
 public:
  virtual ~ModelBackend() = default;

  virtual const ModelInfo& info() const = 0;

  // Runs the model on `batch_size` preprocessed images laid out one after the
  // other (NCHW). Returns batch_size * info().labels.size() probabilities,
  // row per image.
  // REQUIRES: input.size() == batch_size * info().input.tensor_size().
  virtual absl::StatusOr<std::vector<float>> Infer(absl::Span<const float> input,
                                                   int batch_size) = 0;
};

}  // namespace matid

#endif  // MATID_SERVER_BACKEND_MODEL_BACKEND_H_
