// What every gRPC service of the server reads from a call's context, how an
// absl::Status becomes the call's status (same code, same message), and how
// a unary classifying call is counted and answered. Safe from any thread.
#ifndef MATID_SERVER_API_CALL_CONTEXT_H_
#define MATID_SERVER_API_CALL_CONTEXT_H_

#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/api/cancel_counting_reactor.h"
#include "server/core/metrics.h"

namespace matid {

inline grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// The call's deadline; InfiniteFuture() when the client set none.
inline absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

// Whether the client has left; `context` must outlive the check's use.
inline std::function<bool()> CancelledCheck(grpc::CallbackServerContext* context) {
  return [context] { return context->IsCancelled(); };
}

// The caller's client certificate subject and CN (empty without mutual TLS).
inline std::vector<std::string> CallerIdentities(const grpc::CallbackServerContext* context) {
  std::vector<std::string> identities;
  const auto auth = context->auth_context();
  if (auth == nullptr) return identities;
  for (const char* property : {GRPC_X509_SUBJECT_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME}) {
    for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
      identities.emplace_back(value.data(), value.size());
    }
  }
  return identities;
}

// A unary classifying call's reactor and the function that answers it.
struct CountedUnary {
  grpc::ServerUnaryReactor* reactor;                // return it from the handler
  std::function<void(const absl::Status&)> finish;  // call exactly once
  absl::Time start;                                 // when the call was counted
};

// Counts a unary call in flight (and, should the client leave early, in
// matid_requests_cancelled_total); `finish` records `rpc`'s outcome and the
// time since `start` (`metrics` may be nullptr), runs `before_ok` (when set)
// if the status is OK, then finishes the reactor.
inline CountedUnary StartCountedUnary(ServerMetrics* metrics, const char* rpc, absl::Time start,
                                      std::function<void()> before_ok = nullptr) {
  grpc::ServerUnaryReactor* reactor = CancelCountingReactor::Start([metrics, rpc] {
    if (metrics != nullptr) metrics->RecordCancelled(rpc);
  });
  if (metrics != nullptr) metrics->AddInFlight(1);
  return {
      reactor,
      [metrics, reactor, rpc, start, before_ok = std::move(before_ok)](const absl::Status& status) {
        if (metrics != nullptr) {
          metrics->RecordRequest(rpc, status.code(), absl::Now() - start);
          metrics->AddInFlight(-1);
        }
        if (status.ok() && before_ok) before_ok();
        reactor->Finish(ToGrpc(status));
      },
      start};
}

}  // namespace matid

#endif  // MATID_SERVER_API_CALL_CONTEXT_H_
