// Unit tests of the Open Inference Protocol's tensor reading and writing
// (server/api/inference_tensors.h): no server, no model.
#include "server/api/inference_tensors.h"

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/refusal.h"

namespace matid {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

InputSpec GraySpec() {
  InputSpec spec;
  spec.width = 28;
  spec.height = 28;
  spec.color = ColorMode::kGray;
  return spec;
}

inference::ModelInferRequest Request(const std::string& datatype, std::vector<int64_t> shape) {
  inference::ModelInferRequest request;
  auto* input = request.add_inputs();
  input->set_name("IMAGE");
  input->set_datatype(datatype);
  for (int64_t d : shape) input->add_shape(d);
  return request;
}

std::string LengthPrefixed(const std::vector<std::string>& elements) {
  std::string raw;
  for (const std::string& e : elements) {
    const uint32_t n = e.size();
    raw.append(reinterpret_cast<const char*>(&n), 4).append(e);  // little-endian machine
  }
  return raw;
}

TEST(ReadInferImages, RawBytesAreSplitByTheirLengthPrefixes) {
  auto request = Request("BYTES", {3, 1});
  request.add_raw_input_contents(LengthPrefixed({"abc", "", "defgh"}));
  auto images = ReadInferImages(request, GraySpec(), 8);
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_EQ(images->images.size(), 3u);
  EXPECT_EQ(images->images[0].encoded, "abc");
  EXPECT_EQ(images->images[1].encoded, "");
  EXPECT_EQ(images->images[2].encoded, "defgh");
}

TEST(ReadInferImages, RawBytesWithTrailingOrMissingBytesAreRefused) {
  auto extra = Request("BYTES", {1});
  extra.add_raw_input_contents(LengthPrefixed({"abc"}) + "x");
  EXPECT_THAT(ReadInferImages(extra, GraySpec(), 8).status().message(),
              HasSubstr("1 bytes after its 1 elements"));
  auto short_prefix = Request("BYTES", {2});
  short_prefix.add_raw_input_contents(LengthPrefixed({"abc"}) + "xy");
  EXPECT_THAT(ReadInferImages(short_prefix, GraySpec(), 8).status().message(),
              HasSubstr("ends before element 1 of 2"));
}

TEST(ReadInferImages, ContentsAndRawContentsTogetherAreRefused) {
  auto request = Request("BYTES", {1});
  request.mutable_inputs(0)->mutable_contents()->add_bytes_contents("abc");
  request.add_raw_input_contents(LengthPrefixed({"abc"}));
  absl::Status status = ReadInferImages(request, GraySpec(), 8).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("send one"));
}

TEST(ReadInferImages, HugeShapesAreRefusedWithoutAllocating) {
  auto request = Request("UINT8", {1, int64_t{1} << 40, int64_t{1} << 40, 1});
  request.add_raw_input_contents("");
  absl::Status status = ReadInferImages(request, GraySpec(), 8).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("too large"));
  auto negative = Request("UINT8", {1, -28, 28, 1});
  negative.add_raw_input_contents("");
  EXPECT_THAT(ReadInferImages(negative, GraySpec(), 8).status().message(),
              HasSubstr("negative dimension"));
}

TEST(ReadInferImages, TooManyImagesNameTheFlag) {
  auto request = Request("BYTES", {9});
  absl::Status status = ReadInferImages(request, GraySpec(), 8).status();
  EXPECT_THAT(status.message(), HasSubstr("the limit is 8 (--max_batch_items)"));
  EXPECT_EQ(RefusalReason(status), "batch_too_large");
}

TEST(ReadInferImages, Uint8ImagesAreViewsOfOneRawBuffer) {
  auto request = Request("UINT8", {2, 2, 3, 3});
  request.add_raw_input_contents(std::string(2 * 2 * 3 * 3, '\x07'));
  auto images = ReadInferImages(request, GraySpec(), 8);
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_EQ(images->images.size(), 2u);
  const RawPixels& second = images->images[1].raw;
  EXPECT_EQ(second.width, 3);
  EXPECT_EQ(second.height, 2);
  EXPECT_EQ(second.format, PixelFormat::kRgb8);
  EXPECT_EQ(second.pixels.size(), 18u);
  EXPECT_EQ(second.pixels.data(), request.raw_input_contents(0).data() + 18);
}

TEST(ReadInferImages, Fp32TensorsMustHaveTheModelsShape) {
  auto request = Request("FP32", {1, 1, 28, 28});
  request.mutable_inputs(0)->mutable_contents()->mutable_fp32_contents()->Resize(28 * 28, 0.5f);
  auto images = ReadInferImages(request, GraySpec(), 8);
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ(images->images[0].kind, ImageRef::Kind::kTensor);
  EXPECT_EQ(images->images[0].tensor.size(), 28u * 28 * sizeof(float));
  auto wrong = Request("FP32", {1, 1, 32, 32});
  EXPECT_THAT(ReadInferImages(wrong, GraySpec(), 8).status().message(),
              HasSubstr("preprocessed tensors of [N,1,28,28]"));
}

TEST(ReadRequestedOutputs, DefaultsToProbabilitiesAndReadsClassification) {
  inference::ModelInferRequest request;
  auto outputs = ReadRequestedOutputs(request);
  ASSERT_TRUE(outputs.ok());
  ASSERT_EQ(outputs->size(), 1u);
  EXPECT_EQ((*outputs)[0].classification, 0);
  auto* top = request.add_outputs();
  top->set_name("PROBABILITIES");
  (*top->mutable_parameters())["classification"].set_int64_param(2);
  outputs = ReadRequestedOutputs(request);
  ASSERT_TRUE(outputs.ok());
  EXPECT_EQ((*outputs)[0].classification, 2);
  (*top->mutable_parameters())["classification"].set_int64_param(0);
  EXPECT_EQ(ReadRequestedOutputs(request).status().code(), absl::StatusCode::kInvalidArgument);
}

// One raw tensor and one classification at most: every requested output is
// written for every image, so repeats would multiply the answer's size.
TEST(ReadRequestedOutputs, RefusesAnOutputRequestedTwiceTheSameWay) {
  inference::ModelInferRequest request;
  request.add_outputs()->set_name("PROBABILITIES");
  auto* top = request.add_outputs();
  top->set_name("PROBABILITIES");
  (*top->mutable_parameters())["classification"].set_int64_param(3);
  ASSERT_TRUE(ReadRequestedOutputs(request).ok());  // raw and classification: fine
  *request.add_outputs() = *top;
  absl::Status twice = ReadRequestedOutputs(request).status();
  EXPECT_EQ(twice.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RefusalReason(twice), "duplicate_output");
  EXPECT_THAT(twice.message(), HasSubstr("PROBABILITIES is requested more than once with"));
  request.mutable_outputs()->RemoveLast();
  request.add_outputs()->set_name("PROBABILITIES");
  twice = ReadRequestedOutputs(request).status();
  EXPECT_THAT(twice.message(), HasSubstr("more than once without the classification"));
}

TEST(WriteInferOutputs, ProbabilitiesAndTopKStringsAsRawContents) {
  ModelInfo model;
  model.labels = {"a", "b", "c"};
  Classification result;
  result.top = {{2, 0.5f}, {0, 0.3f}, {1, 0.2f}};  // every label, best first
  inference::ModelInferResponse response;
  WriteInferOutputs({result}, model, {{"PROBABILITIES", 0}, {"PROBABILITIES", 2}}, &response);
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(1, 3));
  float probabilities[3];
  ASSERT_EQ(response.raw_output_contents(0).size(), sizeof(probabilities));
  std::memcpy(probabilities, response.raw_output_contents(0).data(), sizeof(probabilities));
  EXPECT_THAT(probabilities, ElementsAre(0.3f, 0.2f, 0.5f));
  EXPECT_EQ(response.outputs(1).datatype(), "BYTES");
  EXPECT_THAT(response.outputs(1).shape(), ElementsAre(1, 2));
  EXPECT_EQ(response.raw_output_contents(1), LengthPrefixed({"0.500000:2:c", "0.300000:0:a"}));
}

}  // namespace
}  // namespace matid
