// End-to-end, C++ client: the real matid-server binary with the tiny
// TorchScript test model, called over loopback through the Open Inference
// Protocol (stubs generated from proto/inference/grpc_service.proto) and
// through matid.v1 for comparison.
#include <grpcpp/create_channel.h>

#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.grpc.pb.h"
#include "matid/v1/matid.grpc.pb.h"
#include "tests/server_process.h"
#include "tests/shared_server_suite.h"
#include "tests/test_paths.h"

namespace matid {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int kClasses = 10;

std::string Png(int seed) {
  cv::Mat picture(28, 28, CV_8UC1);
  cv::setRNGSeed(seed);
  cv::randu(picture, 0, 255);
  std::vector<uint8_t> bytes;
  cv::imencode(".png", picture, bytes);
  return std::string(bytes.begin(), bytes.end());
}

// Triton's raw BYTES: each element after its 4-byte little-endian length.
std::string LengthPrefixed(const std::vector<std::string>& elements) {
  std::string raw;
  for (const std::string& e : elements) {
    const uint32_t n = e.size();
    const char length[4] = {static_cast<char>(n), static_cast<char>(n >> 8),
                            static_cast<char>(n >> 16), static_cast<char>(n >> 24)};
    raw.append(length, 4).append(e);
  }
  return raw;
}

inference::ModelInferRequest RawBytesRequest(const std::vector<std::string>& images) {
  inference::ModelInferRequest request;
  auto* input = request.add_inputs();
  input->set_name("IMAGE");
  input->set_datatype("BYTES");
  input->add_shape(static_cast<int64_t>(images.size()));
  input->add_shape(1);
  request.add_raw_input_contents(LengthPrefixed(images));
  return request;
}

std::vector<float> Floats(const std::string& raw) {
  std::vector<float> values(raw.size() / sizeof(float));
  std::memcpy(values.data(), raw.data(), values.size() * sizeof(float));
  return values;
}

class InferenceProtocolEndToEnd : public SharedServerSuite<InferenceProtocolEndToEnd> {
 protected:
  static void SetUpTestSuite() {
    StartSharedServer({absl::StrCat("--model_dir=", kTestModelDir), "--threads=1",
                       "--max_batch_items=16", "--lame_duck_ms=0"});
  }

  void SetUp() override {
    channel_ = SharedChannel();
    ASSERT_NE(channel_, nullptr);
    stub_ = inference::GRPCInferenceService::NewStub(channel_);
  }

  static void SetDeadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(InferenceProtocolEndToEnd, ModelInferGivesTheScoresClassifyGives) {
  const std::vector<std::string> images = {Png(1), Png(2), Png(3)};
  inference::ModelInferRequest request = RawBytesRequest(images);
  request.set_id("cpp-1");
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status status = stub_->ModelInfer(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.id(), "cpp-1");
  EXPECT_EQ(response.model_name(), "matid-test-model");
  EXPECT_EQ(response.model_version(), "random-seed7");
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_THAT(response.outputs(0).shape(), ::testing::ElementsAre(3, kClasses));
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  const std::vector<float> scores = Floats(response.raw_output_contents(0));
  ASSERT_EQ(scores.size(), 3u * kClasses);

  auto classifier = v1::Classifier::NewStub(channel_);
  for (int i = 0; i < 3; ++i) {
    v1::ClassifyRequest one;
    one.mutable_image()->set_encoded(images[i]);
    one.set_top_k(kClasses);
    v1::ClassifyResponse answer;
    grpc::ClientContext classify_context;
    SetDeadline(&classify_context);
    ASSERT_TRUE(classifier->Classify(&classify_context, one, &answer).ok());
    for (const auto& p : answer.predictions()) {
      // A batch of 3 and one of 1 may round differently in the last bits.
      EXPECT_NEAR(scores[i * kClasses + p.index()], p.score(), 1e-5) << "image " << i;
    }
  }
}

TEST_F(InferenceProtocolEndToEnd, StreamAnswersEveryRequestInOrder) {
  grpc::ClientContext context;
  SetDeadline(&context);
  auto stream = stub_->ModelStreamInfer(&context);
  constexpr int kRequests = 40;
  std::vector<inference::ModelStreamInferResponse> answers;
  std::thread reader([&] {
    inference::ModelStreamInferResponse answer;
    while (stream->Read(&answer)) answers.push_back(answer);
  });
  for (int i = 0; i < kRequests; ++i) {
    inference::ModelInferRequest request =
        RawBytesRequest({i % 9 == 4 ? std::string("junk") : Png(100 + i)});
    request.set_id(absl::StrCat("f", i));
    ASSERT_TRUE(stream->Write(request));
  }
  stream->WritesDone();
  reader.join();
  grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(answers.size(), static_cast<size_t>(kRequests));
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(answers[i].infer_response().id(), absl::StrCat("f", i));
    if (i % 9 == 4) {
      EXPECT_THAT(answers[i].error_message(), StartsWith("INVALID_ARGUMENT: "));
    } else {
      EXPECT_EQ(answers[i].error_message(), "");
      EXPECT_EQ(answers[i].infer_response().raw_output_contents(0).size(),
                kClasses * sizeof(float));
    }
  }
}

TEST_F(InferenceProtocolEndToEnd, ReadinessAndMetadataDescribeTheModel) {
  {
    inference::ServerReadyResponse ready;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ServerReady(&context, {}, &ready).ok());
    EXPECT_TRUE(ready.ready());
  }
  inference::ModelMetadataRequest request;
  request.set_name("matid-test-model");
  inference::ModelMetadataResponse metadata;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->ModelMetadata(&context, request, &metadata).ok());
  ASSERT_EQ(metadata.outputs_size(), 1);
  EXPECT_EQ(metadata.outputs(0).name(), "PROBABILITIES");
  EXPECT_THAT(metadata.outputs(0).shape(), ::testing::ElementsAre(-1, kClasses));
}

TEST_F(InferenceProtocolEndToEnd, TooManyImagesNameTheFlag) {
  std::vector<std::string> images(17, Png(5));
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status status = stub_->ModelInfer(&context, RawBytesRequest(images), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("the limit is 16 (--max_batch_items)"));
}

}  // namespace
}  // namespace matid
