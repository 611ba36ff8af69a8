// Unit tests of the parse budget (server/api/request_parse.h): the estimate
// from wire bytes against what protobuf reports once parsed, refusals, and
// malformed input. No server.
#include "server/api/request_parse.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.pb.h"
#include "matid/v1/matid.pb.h"

namespace matid {
namespace {

using ::testing::HasSubstr;

grpc::ByteBuffer Wire(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// The estimate of `message`'s wire form, next to what it takes parsed.
void ExpectEstimateCovers(const google::protobuf::Message& message) {
  const std::string bytes = message.SerializeAsString();
  absl::StatusOr<int64_t> estimate = ParsedSizeEstimate(Wire(bytes), *message.GetDescriptor());
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  std::unique_ptr<google::protobuf::Message> parsed(message.New());
  ASSERT_TRUE(parsed->ParseFromString(bytes));
  const int64_t used = static_cast<int64_t>(parsed->SpaceUsedLong());
  EXPECT_GE(*estimate, used) << message.GetTypeName();
  // Close enough to refuse only what is really large: within 3x plus the wire.
  EXPECT_LE(*estimate, 3 * used + static_cast<int64_t>(bytes.size())) << message.GetTypeName();
}

TEST(ParsedSizeEstimate, CoversABatchOfImagesWithTags) {
  v1::BatchClassifyRequest batch;
  for (int i = 0; i < 8; ++i) {
    v1::ClassifyRequest* item = batch.add_items();
    item->mutable_image()->set_encoded(std::string(5000 + i, 'x'));
    item->set_request_id("id-" + std::to_string(i));
    (*item->mutable_tags())["camera"] = "line-3";
  }
  ExpectEstimateCovers(batch);
}

TEST(ParsedSizeEstimate, CoversManyEmptyItems) {
  v1::BatchClassifyRequest batch;
  for (int i = 0; i < 100'000; ++i) batch.add_items();
  ExpectEstimateCovers(batch);
}

TEST(ParsedSizeEstimate, CoversManyEmptyTags) {
  v1::ClassifyRequest request;
  for (int i = 0; i < 10'000; ++i) (*request.mutable_tags())[std::to_string(i)] = "";
  ExpectEstimateCovers(request);
}

TEST(ParsedSizeEstimate, CoversPackedAndStringTensorContents) {
  inference::ModelInferRequest request;
  auto* input = request.add_inputs();
  input->set_name("IMAGE");
  input->set_datatype("UINT8");
  for (int64_t d : {1, 28, 28, 1}) input->add_shape(d);
  for (int i = 0; i < 784; ++i) input->mutable_contents()->add_uint_contents(i % 256);
  for (int i = 0; i < 1000; ++i) input->mutable_contents()->add_int64_contents(i);
  for (int i = 0; i < 50; ++i) input->mutable_contents()->add_bytes_contents(std::string(i, 'b'));
  request.add_raw_input_contents(std::string(10'000, 'r'));
  (*request.mutable_parameters())["priority"].set_int64_param(1);
  ExpectEstimateCovers(request);
}

TEST(ParsedSizeEstimate, CountsUnknownFields) {
  // Field 15 is not in ClassifyRequest: kept as unknown bytes.
  std::string bytes;
  for (int i = 0; i < 1000; ++i)
    bytes += std::string(
        "\x7a\x03"
        "abc",
        5);
  absl::StatusOr<int64_t> estimate =
      ParsedSizeEstimate(Wire(bytes), *v1::ClassifyRequest::descriptor());
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  EXPECT_GE(*estimate, static_cast<int64_t>(bytes.size()));
}

TEST(ParseWithinBudget, ParsesARequestThatFits) {
  v1::ClassifyRequest request;
  request.mutable_image()->set_encoded("png bytes");
  request.set_top_k(3);
  v1::ClassifyRequest parsed;
  ASSERT_TRUE(ParseWithinBudget(Wire(request.SerializeAsString()), 1 << 20, &parsed).ok());
  EXPECT_EQ(parsed.image().encoded(), "png bytes");
  EXPECT_EQ(parsed.top_k(), 3);
}

TEST(ParseWithinBudget, RefusesEmptyItemsThatWouldTakeMoreThanTheBudget) {
  // 200,000 empty items: 400 KB on the wire, about 20 MB parsed.
  std::string bytes;
  for (int i = 0; i < 200'000; ++i) bytes += std::string("\x0a\x00", 2);
  v1::BatchClassifyRequest parsed;
  absl::Status status = ParseWithinBudget(Wire(bytes), 4 << 20, &parsed);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("--max_parsed_request_mb"));
  EXPECT_THAT(status.message(), HasSubstr("400000 bytes on the wire"));
  EXPECT_EQ(parsed.items_size(), 0) << "refused before parsing";
}

TEST(ParseWithinBudget, RefusesMalformedBytes) {
  v1::ClassifyRequest parsed;
  // A length-delimited field claiming 100 bytes with 3 present.
  absl::Status status = ParseWithinBudget(Wire(std::string("\x0a\x64"
                                                           "abc",
                                                           5)),
                                          1 << 20, &parsed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  // Field number 0 is never valid.
  status = ParseWithinBudget(Wire(std::string("\x00\x01", 2)), 1 << 20, &parsed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseWithinBudget, RefusesASubMessageLongerThanItsParent) {
  // An item of 2 bytes whose inner field claims 5.
  v1::BatchClassifyRequest parsed;
  absl::Status status =
      ParseWithinBudget(Wire(std::string("\x0a\x02\x0a\x05", 4)), 1 << 20, &parsed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(SerializeToByteBuffer, RoundTrips) {
  v1::ClassifyResponse response;
  response.set_request_id("r1");
  v1::ClassifyResponse parsed;
  ASSERT_TRUE(ParseWithinBudget(SerializeToByteBuffer(response), 1 << 20, &parsed).ok());
  EXPECT_EQ(parsed.request_id(), "r1");
}

}  // namespace
}  // namespace matid
