#include "sparkplug/server_status.h"

#include <grpcpp/client_context.h>

namespace matid::sparkplug {

NodeStatus NodeStatusFromHealth(const v1::HealthResponse& health, const NodeStatus& previous) {
  NodeStatus status = previous;
  status.server_state = v1::HealthResponse::State_Name(health.state());
  if (health.model().name().empty()) return status;
  status.model_name = health.model().name();
  status.model_version = health.model().version();
  status.model_sha256.clear();
  for (const v1::ModelVersionStatus& model : health.models()) {
    if (model.is_default() && model.name() == status.model_name) {
      status.model_sha256 = model.sha256();
    }
  }
  return status;
}

ServerStatusPoller::ServerStatusPoller(std::shared_ptr<grpc::Channel> channel,
                                       absl::Duration interval, std::function<void()> on_change)
    : stub_(v1::Classifier::NewStub(channel)),
      interval_(interval),
      on_change_(std::move(on_change)),
      latest_(Poll(NodeStatus())),
      thread_([this] { Loop(); }) {}

ServerStatusPoller::~ServerStatusPoller() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

NodeStatus ServerStatusPoller::Latest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return latest_;
}

NodeStatus ServerStatusPoller::Poll(const NodeStatus& previous) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + std::min(interval_, absl::Seconds(2))));
  v1::HealthResponse health;
  if (stub_->Health(&context, v1::HealthRequest(), &health).ok()) {
    return NodeStatusFromHealth(health, previous);
  }
  NodeStatus status = previous;
  status.server_state = "UNREACHABLE";
  return status;
}

void ServerStatusPoller::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, absl::ToChronoMicroseconds(interval_), [this] { return stopping_; });
    if (stopping_) break;
    const NodeStatus previous = latest_;
    lock.unlock();
    const NodeStatus status = Poll(previous);
    lock.lock();
    latest_ = status;
    if (!(status == previous) && on_change_) {
      lock.unlock();
      on_change_();
      lock.lock();
    }
  }
}

}  // namespace matid::sparkplug
