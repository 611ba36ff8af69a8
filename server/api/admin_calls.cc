#include "server/api/admin_calls.h"

#include <thread>
#include <utility>

#include "server/api/admin_access.h"
#include "server/api/call_context.h"

namespace matid {

AdminCalls::AdminCalls(std::vector<std::string> admin_subjects)
    : admin_subjects_(std::move(admin_subjects)) {}

AdminCalls::~AdminCalls() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return running_ == 0; });
}

grpc::ServerUnaryReactor* AdminCalls::Run(grpc::CallbackServerContext* context,
                                          std::function<absl::Status()> change) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status allowed =
      CheckAdminAccess(context->peer(), CallerIdentities(context), admin_subjects_);
  if (!allowed.ok()) {
    reactor->Finish(ToGrpc(allowed));
    return reactor;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
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
