// Parsing a request only when its parsed form fits a memory budget. A
// protobuf message can take a hundred times its wire size once parsed (an
// empty repeated sub-message is 2 bytes on the wire and a heap object of
// 100 bytes or more in memory), so a request under the message size limit
// could still take gigabytes before any check ran (issue 26 item 2). The
// estimate walks the wire bytes with the message's descriptor, allocating
// nothing per element; the request is parsed only when it fits.
// Pure functions, safe from any thread.
#ifndef MATID_SERVER_API_REQUEST_PARSE_H_
#define MATID_SERVER_API_REQUEST_PARSE_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace matid {

// About how many bytes of memory `wire`, a serialized `type`, takes once
// parsed (the message objects, strings and repeated fields protobuf
// allocates; never less than SpaceUsedLong() of the parsed message).
// INVALID_ARGUMENT when the bytes are not a well-formed message.
absl::StatusOr<int64_t> ParsedSizeEstimate(const grpc::ByteBuffer& wire,
                                           const google::protobuf::Descriptor& type);

// Parses `wire` into `out` when its estimate is at most `max_parsed_bytes`;
// RESOURCE_EXHAUSTED naming --max_parsed_request_mb otherwise, and
// INVALID_ARGUMENT for bytes that do not parse.
absl::Status ParseWithinBudget(const grpc::ByteBuffer& wire, int64_t max_parsed_bytes,
                               google::protobuf::Message* out);

// `message`'s wire bytes as a gRPC answer.
grpc::ByteBuffer SerializeToByteBuffer(const google::protobuf::Message& message);

}  // namespace matid

#endif  // MATID_SERVER_API_REQUEST_PARSE_H_
