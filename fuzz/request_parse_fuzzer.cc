// Fuzz target: the parse budget's wire walker (server/api/request_parse.h)
// on arbitrary bytes, as a hostile client sends them to the classifying and
// inference RPCs. The first input byte picks the request type (as in
// request_fuzzer: 0 ClassifyRequest, 1 BatchClassifyRequest, 2 Frame,
// 3 ModelInferRequest); the rest are the wire bytes. Invariants: the walker
// never crashes or hangs; bytes protobuf parses are never refused as
// malformed; for them the estimate is at least half of what protobuf
// reports used (repeated fields may hold spare capacity); ParseWithinBudget
// with a budget at the estimate parses exactly what protobuf parses.
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_check.h"
#include "google/protobuf/util/message_differencer.h"
#include "inference/grpc_service.pb.h"
#include "matid/v1/matid.pb.h"
#include "server/api/request_parse.h"

namespace {

std::unique_ptr<google::protobuf::Message> NewRequest(int type) {
  switch (type) {
    case 0:
      return std::make_unique<matid::v1::ClassifyRequest>();
    case 1:
      return std::make_unique<matid::v1::BatchClassifyRequest>();
    case 2:
      return std::make_unique<matid::v1::Frame>();
    default:
      return std::make_unique<inference::ModelInferRequest>();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::unique_ptr<google::protobuf::Message> reference = NewRequest(data[0] % 4);
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  grpc::Slice slice(bytes);
  const grpc::ByteBuffer wire(&slice, 1);

  const absl::StatusOr<int64_t> estimate =
      matid::ParsedSizeEstimate(wire, *reference->GetDescriptor());
  FUZZ_CHECK(estimate.ok() || estimate.status().code() == absl::StatusCode::kInvalidArgument,
             std::string(estimate.status().message()).c_str());
  if (!reference->ParseFromString(bytes)) return 0;
  FUZZ_CHECK(estimate.ok(),
             absl::StrCat("protobuf parses what the walker refused: ", estimate.status().message())
                 .c_str());
  const int64_t used = static_cast<int64_t>(reference->SpaceUsedLong());
  FUZZ_CHECK(2 * *estimate >= used,
             absl::StrCat("estimate ", *estimate, " for ", used, " bytes used").c_str());

  std::unique_ptr<google::protobuf::Message> parsed(reference->New());
  const absl::Status within = matid::ParseWithinBudget(wire, *estimate, parsed.get());
  FUZZ_CHECK(within.ok(), std::string(within.message()).c_str());
  // Compared field by field: map entries serialize in no fixed order.
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*parsed, *reference),
             "ParseWithinBudget parsed something else");
  if (*estimate > 0) {
    const absl::Status refused = matid::ParseWithinBudget(wire, *estimate - 1, parsed.get());
    FUZZ_CHECK(refused.code() == absl::StatusCode::kResourceExhausted,
               "a budget under the estimate was not refused");
  }
  return 0;
}
