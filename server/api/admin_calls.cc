#include "server/api/admin_calls.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/api/admin_access.h"
#include "server/api/call_context.h"

namespace matid {

AdminCalls::AdminCalls(AdminAccess access) : access_(std::move(access)) {}

AdminCalls::~AdminCalls() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return running_ == 0; });
}

grpc::ServerUnaryReactor* AdminCalls::Run(grpc::CallbackServerContext* context,
                                          std::function<absl::Status()> change) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status allowed = CheckAdminAccess(context->peer(), CallerIdentities(context), access_);
  if (!allowed.ok()) {
    reactor->Finish(ToGrpc(allowed));
    return reactor;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_ >= kMaxChangesAtOnce) {
      reactor->Finish(ToGrpc(absl::ResourceExhaustedError(absl::StrCat(
          kMaxChangesAtOnce, " model changes are already running; try again when one ends"))));
      return reactor;
    }
    ++running_;
  }
  std::thread([this, reactor, change = std::move(change)] {
    reactor->Finish(ToGrpc(change()));
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
    idle_.notify_all();
  }).detach();
  return reactor;
}

}  // namespace matid
