#include "server/api/request_parse.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <climits>
#include <string>

#include "absl/strings/str_cat.h"

namespace matid {
namespace {

namespace pb = google::protobuf;
using pb::internal::WireFormatLite;

// The most nested messages protobuf itself parses (its default recursion
// limit); deeper requests would fail to parse anyway.
constexpr int kMaxDepth = 100;
constexpr int64_t kPointer = 8;         // a repeated field's slot for one element
constexpr int64_t kHeapHeader = 16;     // what malloc adds to each block
constexpr int64_t kStringObject = 32;   // sizeof(std::string), short strings inline
constexpr int64_t kMapNode = 32;        // a map entry's hash node and bucket
constexpr int64_t kMapEntry = 96;       // a map entry's key and value objects
constexpr int64_t kUnknownField = 96;   // an unknown field's entry and string
constexpr int64_t kMessageHeader = 64;  // vtable, metadata, cached size, has-bits, padding
constexpr int64_t kRepeatedField = 24;  // RepeatedField / RepeatedPtrField inline part
constexpr int64_t kMapField = 64;       // a map field's inline part

absl::Status Malformed() {
  return absl::InvalidArgumentError("the request is not a well-formed protobuf message");
}

// Walks one message's fields from the wire, adding what each costs parsed.
class SizeWalker {
 public:
  explicit SizeWalker(pb::io::CodedInputStream* in) : in_(in) {}

  // About sizeof a message object of `type` plus its allocation, from its
  // descriptor alone: protobuf's SpaceUsedLong() on a default or fresh
  // instance crashed in map fields (seen under ThreadSanitizer), so no
  // object is asked. A map entry is stored as its key and value in a node
  // (kMapNode), counted as they are walked.
  static int64_t ObjectCost(const pb::Descriptor& type) {
    if (type.options().map_entry()) return kMapEntry;
    int64_t size = kMessageHeader;
    for (int i = 0; i < type.field_count(); ++i) {
      const pb::FieldDescriptor& field = *type.field(i);
      size += field.is_map() ? kMapField : field.is_repeated() ? kRepeatedField : kPointer;
    }
    return size + kHeapHeader;
  }

  // The fields of one `type` up to the stream's current limit.
  absl::Status Walk(const pb::Descriptor& type, int depth) {
    if (depth > kMaxDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("the request nests messages deeper than ", kMaxDepth));
    }
    while (true) {
      const uint32_t tag = in_->ReadTag();
      if (tag == 0) return in_->ConsumedEntireMessage() ? absl::OkStatus() : Malformed();
      const pb::FieldDescriptor* field =
          type.FindFieldByNumber(static_cast<int>(WireFormatLite::GetTagFieldNumber(tag)));
      absl::Status walked = field == nullptr ? Unknown(tag) : Field(*field, tag, depth);
      if (!walked.ok()) return walked;
    }
  }

  int64_t total = 0;

 private:
  absl::Status Field(const pb::FieldDescriptor& field, uint32_t tag, int depth) {
    const auto wire_type = WireFormatLite::GetTagWireType(tag);
    const bool delimited = wire_type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    switch (field.type()) {
      case pb::FieldDescriptor::TYPE_MESSAGE:
        if (!delimited) return Unknown(tag);
        return SubMessage(field, depth);
      case pb::FieldDescriptor::TYPE_STRING:
      case pb::FieldDescriptor::TYPE_BYTES:
        if (!delimited) return Unknown(tag);
        return String();
      case pb::FieldDescriptor::TYPE_GROUP:
        return Unknown(tag);  // proto3 has none: counted as its bytes
      default:
        if (delimited) return field.is_repeated() ? Packed(field) : Unknown(tag);
        if (wire_type != WireFormatLite::WireTypeForFieldType(
                             static_cast<WireFormatLite::FieldType>(field.type()))) {
          return Unknown(tag);
        }
        // A repeated field's array grows by doubling: up to twice its elements.
        if (field.is_repeated()) total += 2 * ScalarSize(field);
        return WireFormatLite::SkipField(in_, tag) ? absl::OkStatus() : Malformed();
    }
  }

  absl::Status SubMessage(const pb::FieldDescriptor& field, int depth) {
    uint32_t length;
    if (!in_->ReadVarint32(&length)) return Malformed();
    total += ObjectCost(*field.message_type()) + (field.is_map() ? kMapNode : kPointer);
    const auto limit = in_->PushLimit(static_cast<int>(length));
    absl::Status walked = Walk(*field.message_type(), depth + 1);
    if (walked.ok() && in_->BytesUntilLimit() != 0) walked = Malformed();
    in_->PopLimit(limit);
    return walked;
  }

  absl::Status String() {
    uint32_t length;
    if (!in_->ReadVarint32(&length)) return Malformed();
    total += kPointer + kStringObject + kHeapHeader;
    if (length >= 16) total += length + 1 + kHeapHeader;  // longer than the inline buffer
    return in_->Skip(static_cast<int>(length)) ? absl::OkStatus() : Malformed();
  }

  // A packed repeated scalar: its elements counted without storing them.
  absl::Status Packed(const pb::FieldDescriptor& field) {
    uint32_t length;
    if (!in_->ReadVarint32(&length)) return Malformed();
    const int64_t size = ScalarSize(field);
    const auto fixed =
        WireFormatLite::WireTypeForFieldType(static_cast<WireFormatLite::FieldType>(field.type()));
    if (fixed == WireFormatLite::WIRETYPE_FIXED32 || fixed == WireFormatLite::WIRETYPE_FIXED64) {
      total += length / (fixed == WireFormatLite::WIRETYPE_FIXED32 ? 4 : 8) * size;
      return in_->Skip(static_cast<int>(length)) ? absl::OkStatus() : Malformed();
    }
    const auto limit = in_->PushLimit(static_cast<int>(length));
    int64_t elements = 0;
    uint64_t value;
    while (in_->BytesUntilLimit() > 0) {
      if (!in_->ReadVarint64(&value)) break;
      ++elements;
    }
    const bool complete = in_->BytesUntilLimit() == 0;
    in_->PopLimit(limit);
    total += 2 * elements * size;  // the array grows by doubling as varints are read
    return complete ? absl::OkStatus() : Malformed();
  }

  // A field the message type does not have (or of another wire type): kept
  // among the unknown fields, each an entry of its own (and, when
  // length-delimited, a string) in a set that grows by doubling.
  absl::Status Unknown(uint32_t tag) {
    const int before = in_->CurrentPosition();
    if (!WireFormatLite::SkipField(in_, tag)) return Malformed();
    total += kUnknownField + 2 * (in_->CurrentPosition() - before);
    return absl::OkStatus();
  }

  static int64_t ScalarSize(const pb::FieldDescriptor& field) {
    switch (field.cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        return 1;
      case pb::FieldDescriptor::CPPTYPE_INT64:
      case pb::FieldDescriptor::CPPTYPE_UINT64:
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        return 8;
      default:
        return 4;
    }
  }

  pb::io::CodedInputStream* const in_;
};

}  // namespace

absl::StatusOr<int64_t> ParsedSizeEstimate(const grpc::ByteBuffer& wire,
                                           const google::protobuf::Descriptor& type) {
  grpc::ByteBuffer copy(wire);  // shares the slices; the reader needs a mutable buffer
  grpc::ProtoBufferReader reader(&copy);
  if (!reader.status().ok()) return Malformed();
  pb::io::CodedInputStream in(&reader);
  in.SetTotalBytesLimit(INT_MAX);
  SizeWalker walker(&in);
  walker.total = SizeWalker::ObjectCost(type);
  if (absl::Status walked = walker.Walk(type, 0); !walked.ok()) return walked;
  return walker.total;
}

absl::Status ParseWithinBudget(const grpc::ByteBuffer& wire, int64_t max_parsed_bytes,
                               google::protobuf::Message* out) {
  const absl::StatusOr<int64_t> estimate = ParsedSizeEstimate(wire, *out->GetDescriptor());
  if (!estimate.ok()) return estimate.status();
  if (*estimate > max_parsed_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the request would take about ", *estimate >> 20, " MiB parsed (", wire.Length(),
        " bytes on the wire); at most ", max_parsed_bytes >> 20,
        " MiB is accepted (--max_parsed_request_mb): send fewer items, tags or parameters, "
        "and tensors as raw_input_contents"));
  }
  grpc::ByteBuffer copy(wire);
  grpc::ProtoBufferReader reader(&copy);
  pb::io::CodedInputStream in(&reader);
  in.SetTotalBytesLimit(INT_MAX);
  if (!reader.status().ok() || !out->ParseFromCodedStream(&in)) return Malformed();
  return absl::OkStatus();
}

grpc::ByteBuffer SerializeToByteBuffer(const google::protobuf::Message& message) {
  grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace matid
