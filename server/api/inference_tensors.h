// The Open Inference Protocol's tensors in matid's terms: reads a
// ModelInferRequest's one input tensor as images (BYTES encoded images,
// UINT8 [N,H,W,C] pixels, FP32 [N,C,H,W] preprocessed tensors; typed or raw
// contents) and the requested outputs (PROBABILITIES as FP32 [N, classes],
// or Triton's classification extension as BYTES "score:index:label"), and
// writes the answers back as tensors. Every refusal is INVALID_ARGUMENT
// naming what was wrong and what is accepted. Pure functions, no gRPC; safe
// from any thread.
#ifndef MATID_SERVER_API_INFERENCE_TENSORS_H_
#define MATID_SERVER_API_INFERENCE_TENSORS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/grpc_service.pb.h"
#include "server/backend/model_info.h"
#include "server/core/classifier.h"
#include "server/core/image.h"

namespace matid {

// The names matid's models declare (ModelMetadata, ModelConfig).
inline constexpr char kImageInputName[] = "IMAGE";
inline constexpr char kProbabilitiesOutputName[] = "PROBABILITIES";

// The images of one request. `images` borrow the request's bytes (or
// `converted`, for typed UINT8 contents): the request and this object must
// outlive them.
struct InferImages {
  std::vector<ImageRef> images;
  std::vector<char> converted;  // moving keeps its buffer where it is
};

// REQUIRES: `request` outlives the result. `max_images`: the largest N
// (--max_batch_items).
absl::StatusOr<InferImages> ReadInferImages(const inference::ModelInferRequest& request,
                                            const InputSpec& spec, int max_images);

// One output to write: the probabilities, or the top `classification` as
// strings.
struct RequestedOutput {
  std::string name;
  int classification = 0;  // 0: FP32 probabilities; K > 0: BYTES [N, K]
};

// The outputs `request` asks for (none named: the probabilities).
absl::StatusOr<std::vector<RequestedOutput>> ReadRequestedOutputs(
    const inference::ModelInferRequest& request);

// Writes `outputs` for `results` (one per image, each with every label's
// score) into `response`, all as raw_output_contents.
void WriteInferOutputs(const std::vector<Classification>& results, const ModelInfo& model,
                       const std::vector<RequestedOutput>& outputs,
                       inference::ModelInferResponse* response);

}  // namespace matid

#endif  // MATID_SERVER_API_INFERENCE_TENSORS_H_
