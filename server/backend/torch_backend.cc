#include "server/backend/torch_backend.h"

#include <ATen/Parallel.h>
#include <sys/stat.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/script.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/backend/model_files.h"
#include "server/backend/thread_priority.h"

namespace matid {
namespace {

bool FileExists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

absl::StatusOr<at::QEngine> ParseQEngine(const std::string& name) {
  if (name == "onednn" || name == "x86") return at::QEngine::ONEDNN;
  if (name == "qnnpack") return at::QEngine::QNNPACK;
  if (name == "fbgemm") return at::QEngine::FBGEMM;
  return absl::InvalidArgumentError(absl::StrCat(
      "metadata qengine \"", name, "\" is unknown; expected onednn, qnnpack or fbgemm"));
}

class TorchBackend final : public ModelBackend {
 public:
  TorchBackend(ModelInfo info, torch::jit::Module module, int intra_op_threads)
      : info_(std::move(info)), module_(std::move(module)), intra_op_threads_(intra_op_threads) {}

  const ModelInfo& info() const override { return info_; }

  absl::StatusOr<std::vector<float>> Infer(absl::Span<const float> input, int batch_size) override {
    const auto& spec = info_.input;
    if (batch_size <= 0 || input.size() != static_cast<size_t>(batch_size) * spec.tensor_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Infer got ", input.size(), " floats for batch ", batch_size));
    }
    try {
      // LibTorch's thread count is OpenMP's, which is per calling thread:
      // set it on each thread that runs the model (the batcher's workers),
      // not only where the backend was built. Without this the workers ran
      // with OpenMP's default instead of --threads.
      thread_local int threads_applied = 0;
      if (threads_applied != intra_op_threads_) {
        at::set_num_threads(intra_op_threads_);
        threads_applied = intra_op_threads_;
      }
      c10::InferenceMode inference_mode;
      // from_blob borrows the caller's memory; forward() does not write it.
      at::Tensor batch =
          torch::from_blob(const_cast<float*>(input.data()),
                           {batch_size, spec.channels(), spec.height, spec.width}, torch::kFloat32);
      at::Tensor output = module_.forward({batch}).toTensor();
      const int64_t classes = static_cast<int64_t>(info_.labels.size());
      if (output.dim() != 2 || output.size(0) != batch_size || output.size(1) != classes) {
        return absl::InternalError(absl::StrCat("model output has shape ", c10::str(output.sizes()),
                                                "; expected [", batch_size, ", ", classes,
                                                "] (one score per label)"));
      }
      output = output.to(torch::kFloat32);
      if (!info_.outputs_probabilities) output = torch::softmax(output, 1);
      output = output.contiguous();
      const float* data = output.data_ptr<float>();
      return std::vector<float>(data, data + output.numel());
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("model forward failed: ", e.what()));
    }
  }

 private:
  // Constant after construction.
  const ModelInfo info_;
  // Its forward() may run on several threads at once: TorchScript's
  // executor is thread-safe for inference.
  torch::jit::Module module_;
  const int intra_op_threads_;
};

// Loads, optimizes and warms up the model on the calling thread.
absl::StatusOr<std::unique_ptr<ModelBackend>> LoadOnThisThread(const TorchBackendOptions& options,
                                                               ModelInfo info,
                                                               const std::string& model_bytes,
                                                               const std::string& path) {
  try {
    // Inter-op parallelism can only be set once per process, before use.
    static const bool interop_set = [] {
      at::set_num_interop_threads(1);
      return true;
    }();
    (void)interop_set;
    at::set_num_threads(std::max(1, options.intra_op_threads));
    if (options.int8) {
      auto engine = ParseQEngine(info.qengine);
      if (!engine.ok()) return engine.status();
      const auto& supported = at::globalContext().supportedQEngines();
      if (std::find(supported.begin(), supported.end(), *engine) == supported.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("quantized engine ", info.qengine, " is not built into this LibTorch"));
      }
      at::globalContext().setQEngine(*engine);
    }

    std::istringstream stream(model_bytes);
    torch::jit::Module module = torch::jit::load(stream, torch::kCPU);
    module.eval();
    if (!options.int8 && options.optimize) {
      if (module.hasattr("training")) module = torch::jit::freeze(module);
      module = torch::jit::optimize_for_inference(module);
    }

    auto backend = std::make_unique<TorchBackend>(std::move(info), std::move(module),
                                                  std::max(1, options.intra_op_threads));
    // Warm-up: the first passes pay for allocation and kernel selection.
    const auto& spec = backend->info().input;
    for (int batch : {1, std::max(1, options.warmup_batch_size)}) {
      std::vector<float> zeros(batch * spec.tensor_size(), 0.0f);
      for (int run = 0; run < options.warmup_runs; ++run) {
        auto result = backend->Infer(zeros, batch);
        if (!result.ok()) {
          return absl::Status(
              result.status().code(),
              absl::StrCat("warm-up of ", path, " failed: ", result.status().message()));
        }
      }
    }
    return std::unique_ptr<ModelBackend>(std::move(backend));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load TorchScript model ", path, ": ", e.what()));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelBackend>> CreateTorchBackend(
    const TorchBackendOptions& options) {
  const std::string file = options.int8 ? "model_int8.pt" : "model.pt";
  const std::string path = absl::StrCat(options.model_dir, "/", file);
  // The bytes checked are the bytes loaded: nothing is read twice.
  absl::StatusOr<VerifiedModel> verified = ReadVerifiedModel(
      options.model_dir, file, options.require_sha256, options.trusted_keys.get());
  if (absl::IsNotFound(verified.status()) && options.int8 && !FileExists(path)) {
    return absl::NotFoundError(
        absl::StrCat(verified.status().message(), " (export the int8 variant, or drop --int8)"));
  }
  if (!verified.ok()) return verified.status();
  verified->info.variant = options.int8 ? "int8" : "fp32";
  // Loading, optimize_for_inference and the warm-up run LibTorch parallel
  // regions. On the caller's (main) thread they would leave an OpenMP team
  // there for good; OpenMP then counts more threads than cores and throttles
  // spinning, so the workers' passes sleep at every barrier (traced with
  // perf: ~60 context switches per ResNet-18 request). A thread that exits
  // takes its team with it.
  absl::StatusOr<std::unique_ptr<ModelBackend>> loaded = absl::InternalError("model not loaded");
  std::thread loader([&] {
    if (options.low_priority_load) LowerThisThreadsPriority();
    loaded = LoadOnThisThread(options, std::move(verified->info), verified->model_bytes, path);
  });
  loader.join();
  return loaded;
}

}  // namespace matid
