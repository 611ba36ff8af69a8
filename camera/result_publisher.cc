#include "camera/result_publisher.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace matid {

absl::Status ValidateResultPublisherOptions(const ResultPublisherOptions& options) {
  if (options.max_outbox < 1 || options.max_outbox > 10'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_outbox is ", options.max_outbox, "; must be in 1..10000000"));
  }
  absl::Status topic = ValidateResultTopicTemplate(options.topic_template);
  if (!topic.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--mqtt_topic_template: ", topic.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ResultPublisher>> ResultPublisher::Create(
    const ResultPublisherOptions& options, const PublishLinkFactory& make_link,
    prometheus::Registry* registry) {
  absl::Status valid = ValidateResultPublisherOptions(options);
  if (!valid.ok()) return valid;
  std::unique_ptr<ResultPublisher> publisher(new ResultPublisher(options));
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
  auto link = make_link({.on_acked = [self](int id) { self->OnAck(id); },
                         .on_connection = [self](bool up, const std::string& reason) {
                           self->OnConnection(up, reason);
                         }});
  if (!link.ok()) return link.status();
  {
    std::lock_guard<std::mutex> lock(publisher->mu_);
    publisher->link_ = *std::move(link);
  }
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
  link_.reset();  // its callbacks stop before the members they touch go
}

void ResultPublisher::Publish(const ResultMessage& message) {
  std::lock_guard<std::mutex> lock(mu_);
  outbox_.emplace_back(TopicFor(message.camera_id), ToJson(message));
  if (static_cast<int>(outbox_.size()) > options_.max_outbox) {
    outbox_.pop_front();
    if (dropped_ != nullptr) dropped_->Increment();
  }
  FlushLocked();
}

void ResultPublisher::FlushLocked() {
  while (!outbox_.empty()) {
    absl::StatusOr<int> id = link_->Publish(outbox_.front().first, outbox_.front().second);
    if (!id.ok()) {
      if (failures_ != nullptr) failures_->Increment();
      break;  // the retry loop sends it again
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

void ResultPublisher::OnConnection(bool up, const std::string& reason) {
  std::fprintf(stderr, "matid-camera: %s %s%s\n", options_.destination.c_str(),
               up ? "connected" : "not connected: ", up ? "" : reason.c_str());
  {
    std::lock_guard<std::mutex> lock(mu_);
    link_up_ = up;
  }
  changed_.notify_all();
}

void ResultPublisher::RetryLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    changed_.wait(lock, [this] { return stopping_ || (link_up_ && !outbox_.empty()); });
    if (stopping_) return;
    FlushLocked();
    if (!outbox_.empty()) {
      // Refused although the link said it was up (it is going down, or its
      // own queue is full): try again shortly rather than spin.
      changed_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping_; });
    }
  }
}

bool ResultPublisher::Drain(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                           [&] { return outbox_.empty() && unacked_.empty(); });
}

}  // namespace matid
