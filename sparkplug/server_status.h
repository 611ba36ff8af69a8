// What the Sparkplug node reports of matid-server: the default model's
// name, version and sha256 and the serving state, asked of the server's
// Health every interval on a thread of its own. NodeStatusFromHealth is the
// pure part. Thread-safety: Latest may be called from any thread.
#ifndef MATID_SPARKPLUG_SERVER_STATUS_H_
#define MATID_SPARKPLUG_SERVER_STATUS_H_

#include <grpcpp/channel.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/time/time.h"
#include "matid/v1/matid.grpc.pb.h"
#include "sparkplug/metrics.h"

namespace matid::sparkplug {

// The model the server answers with and its state; `previous`'s model when
// the server does not name one (a server that is still loading).
NodeStatus NodeStatusFromHealth(const v1::HealthResponse& health, const NodeStatus& previous);

class ServerStatusPoller {
 public:
  // Polls once before returning (at most 2 s), then every `interval`; `on_change` (may be empty)
  // runs on the poller's thread when the status changes.
  ServerStatusPoller(std::shared_ptr<grpc::Channel> channel, absl::Duration interval,
                     std::function<void()> on_change);
  ~ServerStatusPoller();  // stops and joins

  ServerStatusPoller(const ServerStatusPoller&) = delete;
  ServerStatusPoller& operator=(const ServerStatusPoller&) = delete;

  NodeStatus Latest() const;

 private:
  // One Health call; `previous` with state UNREACHABLE when it fails.
  NodeStatus Poll(const NodeStatus& previous);
  void Loop();

  const std::unique_ptr<v1::Classifier::Stub> stub_;
  const absl::Duration interval_;
  const std::function<void()> on_change_;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by mu_
  NodeStatus latest_;      // guarded by mu_
  std::thread thread_;     // last member: starts after the others exist
};

}  // namespace matid::sparkplug

#endif  // MATID_SPARKPLUG_SERVER_STATUS_H_
