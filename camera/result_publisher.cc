#include "camera/result_publisher.h"

#include <cstdio>

namespace matid {

absl::StatusOr<std::unique_ptr<ResultPublisher>> ResultPublisher::Create(
    const MqttOptions& options, int max_outbox, prometheus::Registry* registry,
    std::string topic_template) {
  absl::Status valid = ValidateResultTopicTemplate(topic_template);
  if (!valid.ok()) return valid;
  std::unique_ptr<ResultPublisher> publisher(
      new ResultPublisher(std::max(1, max_outbox), std::move(topic_template)));
  if (registry != nullptr) {
    auto counter = [&](const char* name, const char* help) {
      return &prometheus::BuildCounter().Name(name).Help(help).Register(*registry).Add({});
    };
    publisher->published_ = counter("matid_camera_results_published_total",
                                    "Result messages acknowledged by the local broker");
    publisher->failures_ = counter("matid_camera_publish_failures_total",
                                   "Publish attempts refused (broker unreachable); retried");
    publisher->dropped_ = counter("matid_camera_results_dropped_total",
                                  "Results dropped because the outbox was full");
    publisher->backlog_ = &prometheus::BuildGauge()
                               .Name("matid_camera_publish_backlog")
                               .Help("Results waiting to be published or acknowledged")
                               .Register(*registry)
                               .Add({});
  }
  ResultPublisher* self = publisher.get();
  MqttClient::Callbacks callbacks;
  callbacks.on_published = [self](int id) { self->OnAck(id); };
  callbacks.on_connection = [self, options](bool up, const std::string& reason) {
    std::fprintf(stderr, "matid-camera: MQTT broker %s:%d %s%s\n", options.host.c_str(),
                 options.port, up ? "connected" : "not connected: ", up ? "" : reason.c_str());
    self->changed_.notify_all();
  };
  auto client = MqttClient::Create(options, callbacks);
  if (!client.ok()) return client.status();
  publisher->client_ = *std::move(client);
  publisher->retry_ = std::thread([self] { self->RetryLoop(); });
  return publisher;
}

ResultPublisher::~ResultPublisher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (retry_.joinable()) retry_.join();
  client_.reset();
}

void ResultPublisher::Publish(const ResultMessage& message) {
  std::lock_guard<std::mutex> lock(mu_);
  outbox_.emplace_back(TopicFor(message.camera_id), ToJson(message));
  if (static_cast<int>(outbox_.size()) > max_outbox_) {
    outbox_.pop_front();
    if (dropped_ != nullptr) dropped_->Increment();
  }
  FlushLocked();
}

void ResultPublisher::FlushLocked() {
  while (!outbox_.empty()) {
    absl::StatusOr<int> id = client_->Publish(outbox_.front().first, outbox_.front().second, 1);
    if (!id.ok()) {
      if (failures_ != nullptr) failures_->Increment();
      break;  // the retry loop tries again
    }
    outbox_.pop_front();
    if (early_acks_.erase(*id) == 0) {
      unacked_.insert(*id);
    } else if (published_ != nullptr) {
      published_->Increment();
    }
  }
  if (backlog_ != nullptr) backlog_->Set(static_cast<double>(outbox_.size() + unacked_.size()));
}

void ResultPublisher::OnAck(int id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (unacked_.erase(id) == 0) {
      early_acks_.insert(id);
    } else if (published_ != nullptr) {
      published_->Increment();
    }
    if (backlog_ != nullptr) backlog_->Set(static_cast<double>(outbox_.size() + unacked_.size()));
  }
  changed_.notify_all();
}

void ResultPublisher::RetryLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    changed_.wait_for(lock, std::chrono::milliseconds(200));
    if (!outbox_.empty() && client_->connected()) FlushLocked();
  }
}

bool ResultPublisher::Drain(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                           [&] { return outbox_.empty() && unacked_.empty(); });
}

}  // namespace matid
