// Fuzz target: every classifying RPC's request as the server receives it
// (matid.v1's three and the Open Inference Protocol's ModelInfer). A real
// MatidServer (gRPC on 127.0.0.1, the fake model of the tests) runs in this
// process; the first input byte picks the RPC and the rest is parsed as its
// request message (inputs that are not a valid message are skipped: the
// protobuf parser is not ours). Invariants: the server never crashes or
// hangs; every call ends OK or INVALID_ARGUMENT with a message; an answer has
// one result per image, in order, each with top-k predictions that are
// valid labels with scores in [0, 1], best first; a ModelInfer answer has
// one output per requested output, shaped [N, ...], with raw contents of
// that size.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_check.h"
#include "inference/grpc_service.grpc.pb.h"
#include "matid/v1/matid.grpc.pb.h"
#include "server/matid_server.h"
#include "tests/fake_backend.h"

namespace {

constexpr int kLabels = 10;
constexpr int kDefaultTopK = 5;

struct Harness {
  std::unique_ptr<matid::MatidServer> server;
  std::unique_ptr<matid::v1::Classifier::Stub> stub;
  std::unique_ptr<inference::GRPCInferenceService::Stub> inference;
};

Harness MakeHarness() {
  matid::ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics.port = -1;
  options.default_top_k = kDefaultTopK;
  options.lame_duck = absl::ZeroDuration();
  options.preprocess.max_image_pixels = 1 << 22;  // keeps runs fast; the logic is the same
  auto server = matid::MatidServer::Create(
      options, std::make_unique<matid::FakeBackend>(matid::FakeModelInfo(8, 8, kLabels)));
  FUZZ_CHECK(server.ok(), std::string(server.status().message()).c_str());
  Harness harness;
  harness.server = *std::move(server);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", harness.server->port()),
                                     grpc::InsecureChannelCredentials());
  harness.stub = matid::v1::Classifier::NewStub(channel);
  harness.inference = inference::GRPCInferenceService::NewStub(channel);
  return harness;
}

// One server for the whole run, started by the first input.
Harness& TheHarness() {
  static Harness harness = MakeHarness();
  return harness;
}

void SetDeadline(grpc::ClientContext* context) {
  // Far beyond what any input needs: reaching it means the server hung.
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

void CheckStatus(grpc::StatusCode code, const std::string& message) {
  FUZZ_CHECK(code == grpc::StatusCode::OK || code == grpc::StatusCode::INVALID_ARGUMENT,
             absl::StrCat("status ", code, ": ", message).c_str());
  FUZZ_CHECK(code == grpc::StatusCode::OK || !message.empty(), "refusal without a message");
}

void CheckPredictions(
    uint32_t top_k, const google::protobuf::RepeatedPtrField<matid::v1::Prediction>& predictions) {
  const int64_t asked = top_k == 0 ? kDefaultTopK : top_k;
  FUZZ_CHECK(predictions.size() == std::min<int64_t>(asked, kLabels),
             absl::StrCat("top_k ", top_k, " gave ", predictions.size(), " predictions").c_str());
  float previous = 1.0f;
  for (const auto& prediction : predictions) {
    FUZZ_CHECK(prediction.index() < kLabels, "label index out of range");
    FUZZ_CHECK(prediction.label() == absl::StrCat("c", prediction.index()), "label/index mismatch");
    FUZZ_CHECK(prediction.score() >= 0 && prediction.score() <= previous, "scores not best first");
    previous = prediction.score();
  }
}

void FuzzClassify(const matid::v1::ClassifyRequest& request) {
  grpc::ClientContext context;
  SetDeadline(&context);
  matid::v1::ClassifyResponse response;
  const grpc::Status status = TheHarness().stub->Classify(&context, request, &response);
  CheckStatus(status.error_code(), status.error_message());
  if (!status.ok()) return;
  FUZZ_CHECK(response.request_id() == request.request_id(), "request_id not echoed");
  CheckPredictions(request.top_k(), response.predictions());
}

void FuzzBatchClassify(const matid::v1::BatchClassifyRequest& request) {
  grpc::ClientContext context;
  SetDeadline(&context);
  matid::v1::BatchClassifyResponse response;
  const grpc::Status status = TheHarness().stub->BatchClassify(&context, request, &response);
  CheckStatus(status.error_code(), status.error_message());
  if (!status.ok()) return;
  FUZZ_CHECK(response.results_size() == request.items_size(), "one result per item");
  for (int i = 0; i < request.items_size(); ++i) {
    const matid::v1::BatchItemResult& result = response.results(i);
    CheckStatus(static_cast<grpc::StatusCode>(result.status().code()), result.status().message());
    if (result.status().code() != 0) continue;
    FUZZ_CHECK(result.response().request_id() == request.items(i).request_id(),
               "item request_id not echoed");
    CheckPredictions(request.items(i).top_k(), result.response().predictions());
  }
}

// The batch's items, sent as camera frames on one stream.
void FuzzClassifyStream(const matid::v1::BatchClassifyRequest& request) {
  grpc::ClientContext context;
  SetDeadline(&context);
  auto stream = TheHarness().stub->ClassifyStream(&context);
  for (int i = 0; i < request.items_size(); ++i) {
    matid::v1::Frame frame;
    frame.set_seq(1000 + i);
    *frame.mutable_image() = request.items(i).image();
    frame.set_top_k(request.items(i).top_k());
    *frame.mutable_tags() = request.items(i).tags();
    if (!stream->Write(frame)) break;
  }
  stream->WritesDone();
  matid::v1::FrameResult result;
  int received = 0;
  while (stream->Read(&result)) {
    FUZZ_CHECK(received < request.items_size(), "more results than frames");
    FUZZ_CHECK(result.seq() == static_cast<uint64_t>(1000 + received), "results out of order");
    CheckStatus(static_cast<grpc::StatusCode>(result.status().code()), result.status().message());
    if (result.status().code() == 0) {
      CheckPredictions(request.items(received).top_k(), result.predictions());
    }
    ++received;
  }
  const grpc::Status status = stream->Finish();
  CheckStatus(status.error_code(), status.error_message());
  FUZZ_CHECK(received == request.items_size(), "a frame got no result");
}

// The request as sent, but always to the one model (a random model name is
// only NOT_FOUND).
void FuzzModelInfer(inference::ModelInferRequest request) {
  request.clear_model_name();
  request.clear_model_version();
  grpc::ClientContext context;
  SetDeadline(&context);
  inference::ModelInferResponse response;
  const grpc::Status status = TheHarness().inference->ModelInfer(&context, request, &response);
  CheckStatus(status.error_code(), status.error_message());
  if (!status.ok()) return;
  FUZZ_CHECK(response.id() == request.id(), "id not echoed");
  const int64_t images = request.inputs(0).shape(0);
  const int wanted = std::max(1, request.outputs_size());
  FUZZ_CHECK(response.outputs_size() == wanted, "one output per requested output");
  FUZZ_CHECK(response.raw_output_contents_size() == wanted, "raw contents per output");
  for (int i = 0; i < wanted; ++i) {
    const auto& output = response.outputs(i);
    FUZZ_CHECK(output.shape_size() == 2 && output.shape(0) == images, "output shape [N, ...]");
    if (output.datatype() == "FP32") {
      FUZZ_CHECK(output.shape(1) == kLabels, "one probability per label");
      FUZZ_CHECK(response.raw_output_contents(i).size() == images * kLabels * sizeof(float),
                 "raw probabilities of the output's size");
    } else {
      FUZZ_CHECK(output.datatype() == "BYTES", "FP32 or BYTES outputs only");
      FUZZ_CHECK(output.shape(1) >= 1 && output.shape(1) <= kLabels, "classification K");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int rpc = data[0] % 4;
  const void* message = data + 1;
  const int message_size = static_cast<int>(size - 1);
  if (rpc == 3) {
    inference::ModelInferRequest request;
    if (request.ParseFromArray(message, message_size)) FuzzModelInfer(std::move(request));
  } else if (rpc == 0) {
    matid::v1::ClassifyRequest request;
    if (request.ParseFromArray(message, message_size)) FuzzClassify(request);
  } else {
    matid::v1::BatchClassifyRequest request;
    if (!request.ParseFromArray(message, message_size)) return 0;
    if (rpc == 1) {
      FuzzBatchClassify(request);
    } else {
      FuzzClassifyStream(request);
    }
  }
  return 0;
}
