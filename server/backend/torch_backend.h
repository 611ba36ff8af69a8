// Loads a TorchScript model directory (model.pt or model_int8.pt plus
// metadata.json) into a ModelBackend. This header is torch-free on purpose:
// only torch_backend.cc includes LibTorch. Thread-safety as ModelBackend.
#ifndef MATID_SERVER_BACKEND_TORCH_BACKEND_H_
#define MATID_SERVER_BACKEND_TORCH_BACKEND_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/backend/model_backend.h"
#include "server/backend/model_signature.h"

namespace matid {

struct TorchBackendOptions {
  std::string model_dir;     // holds metadata.json and the model files
  bool int8 = false;         // load model_int8.pt instead of model.pt
  int intra_op_threads = 2;  // threads one forward pass may use
  // Apply torch::jit::optimize_for_inference (fp32 only) at load time; the
  // exported module is frozen, optimisation happens here because modules
  // saved after it do not load in LibTorch 1.13.
  bool optimize = true;
  int warmup_batch_size = 1;  // warm-up also runs at this size (e.g. max batch)
  int warmup_runs = 3;
  // Refuse a directory whose metadata.json records no sha256 for the model
  // file (a model repository's versions are published with digests).
  bool require_sha256 = false;
  // Load, optimise and warm up at lower CPU priority (nice 10): for a new
  // version loaded beside the one serving.
  bool low_priority_load = false;
  // Only versions signed by one of these keys load (model_signature.h);
  // nullptr: signatures are not checked.
  std::shared_ptr<const TrustedModelKeys> trusted_keys;
};

// Loads, optimises and warms the model up. Fails with NOT_FOUND for missing
// files and INVALID_ARGUMENT / INTERNAL with LibTorch's reason otherwise.
absl::StatusOr<std::unique_ptr<ModelBackend>> CreateTorchBackend(
    const TorchBackendOptions& options);

}  // namespace matid

#endif  // MATID_SERVER_BACKEND_TORCH_BACKEND_H_
