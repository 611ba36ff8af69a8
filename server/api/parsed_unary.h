// A unary call whose request arrives as wire bytes (a raw callback method):
// the request is parsed only when its parsed form fits the budget
// (request_parse.h), else the call is answered with the refusal and counted.
// The parsed request and the typed response live until the call is
// answered; the response is serialized into the call's answer just before
// an OK finish. Safe from any thread.
#ifndef MATID_SERVER_API_PARSED_UNARY_H_
#define MATID_SERVER_API_PARSED_UNARY_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "server/api/call_context.h"
#include "server/api/request_parse.h"
#include "server/core/metrics.h"

namespace matid {

// `run(const Request&, Response*, CountedUnary)` serves the parsed call and
// returns its reactor; REQUIRES: it answers through the CountedUnary's
// finish, exactly once. `metrics` may be nullptr.
template <class Request, class Response, class Run>
grpc::ServerUnaryReactor* ServeParsedUnary(ServerMetrics* metrics, const char* rpc,
                                           const grpc::ByteBuffer& wire, grpc::ByteBuffer* answer,
                                           int64_t max_parsed_bytes, Run run) {
  struct Call {
    Request request;
    Response response;
  };
  auto call = std::make_shared<Call>();
  CountedUnary counted = StartCountedUnary(metrics, rpc, absl::Now(), [call, answer] {
    *answer = SerializeToByteBuffer(call->response);
  });
  if (absl::Status parsed = ParseWithinBudget(wire, max_parsed_bytes, &call->request);
      !parsed.ok()) {
    if (metrics != nullptr) metrics->RecordRefusal(parsed);
    counted.finish(parsed);
    return counted.reactor;
  }
  return run(call->request, &call->response, std::move(counted));
}

}  // namespace matid

#endif  // MATID_SERVER_API_PARSED_UNARY_H_
