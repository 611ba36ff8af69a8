// Runs operators' model changes for the gRPC services that offer them
// (matid.v1.ModelAdmin, the Open Inference Protocol's repository RPCs):
// checks that the caller may administer (see admin_access.h), then runs the
// change on a thread of its own, because changes wait for model loads and
// gRPC's threads must not, and finishes the call with its status. At most
// kMaxChangesAtOnce run at once; beyond them a call gets RESOURCE_EXHAUSTED.
// Thread-safety: Run may be called from any thread; the destructor waits for
// changes still running.
#ifndef MATID_SERVER_API_ADMIN_CALLS_H_
#define MATID_SERVER_API_ADMIN_CALLS_H_

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/api/admin_access.h"

namespace matid {

class AdminCalls {
 public:
  explicit AdminCalls(AdminAccess access);
  ~AdminCalls();

  AdminCalls(const AdminCalls&) = delete;
  AdminCalls& operator=(const AdminCalls&) = delete;

  // PERMISSION_DENIED unless the caller may administer; otherwise `change`
  // runs on its own thread (it fills the response) and its status answers.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                std::function<absl::Status()> change);

  static constexpr int kMaxChangesAtOnce = 4;

 private:
  const AdminAccess access_;

  std::mutex mu_;  // std::mutex: visible to ThreadSanitizer
  std::condition_variable idle_;
  int running_ = 0;  // guarded by mu_
};

}  // namespace matid

#endif  // MATID_SERVER_API_ADMIN_CALLS_H_
