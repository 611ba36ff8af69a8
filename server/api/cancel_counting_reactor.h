// The reactor of a unary classifying call: like gRPC's default one, plus a
// function run when the call ends before its answer was sent (the client
// cancelled, its deadline passed, or the connection dropped). When that
// function runs, the call's context already says IsCancelled(), so an image
// of the call still queued will not be run.
//
// Made with Start(); it deletes itself once gRPC is done with the call
// (OnDone), so its pointer is valid until then. Finish() is called exactly
// once, from any thread; `on_cancel` may run on any gRPC thread, at most once.
#ifndef MATID_SERVER_API_CANCEL_COUNTING_REACTOR_H_
#define MATID_SERVER_API_CANCEL_COUNTING_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <utility>

namespace matid {

class CancelCountingReactor final : public grpc::ServerUnaryReactor {
 public:
  static CancelCountingReactor* Start(std::function<void()> on_cancel) {
    return new CancelCountingReactor(std::move(on_cancel));  // deleted in OnDone
  }

  void OnCancel() override {
    if (on_cancel_) on_cancel_();
  }
  void OnDone() override { delete this; }

 private:
  explicit CancelCountingReactor(std::function<void()> on_cancel)
      : on_cancel_(std::move(on_cancel)) {}

  const std::function<void()> on_cancel_;
};

}  // namespace matid

#endif  // MATID_SERVER_API_CANCEL_COUNTING_REACTOR_H_
