#include "common/mqtt_outbox.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/metric_families.h"

namespace matid {

absl::StatusOr<std::unique_ptr<MqttOutbox>> MqttOutbox::Create(const MqttOutboxOptions& options,
                                                               const PublishLinkFactory& make_link,
                                                               prometheus::Registry* registry) {
  if (options.max_outbox < 1 || options.max_outbox > 10'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_outbox is ", options.max_outbox, "; must be in 1..10000000"));
  }
  std::unique_ptr<MqttOutbox> outbox(new MqttOutbox(options));
  if (registry != nullptr) {
    auto counter = [&](const std::string& name, const std::string& help) {
      return AddCounter(*registry, name, help);
    };
    const MqttOutboxOptions::MetricNames& names = options.metrics;
    outbox->published_ =
        counter(names.published, absl::StrCat(options.what, " acknowledged by the local broker"));
    outbox->failures_ =
        counter(names.failures, "Publish attempts refused (broker unreachable); retried");
    outbox->dropped_ =
        counter(names.dropped, absl::StrCat(options.what, " dropped because the outbox was full"));
    outbox->backlog_ =
        &prometheus::BuildGauge()
             .Name(names.backlog)
             .Help(absl::StrCat(options.what, " waiting to be published or acknowledged"))
             .Register(*registry)
             .Add({});
  }
  MqttOutbox* self = outbox.get();
  auto link = make_link(
      {.on_acked = [self](int id) { self->OnAck(id); },
       .on_connection = [self](bool up,
                               const std::string& reason) { self->OnConnection(up, reason); }});
  if (!link.ok()) return link.status();
  {
    std::lock_guard<std::mutex> lock(outbox->mu_);
    outbox->link_ = *std::move(link);
  }
  outbox->retry_ = std::thread([self] { self->RetryLoop(); });
  return outbox;
}

MqttOutbox::~MqttOutbox() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (retry_.joinable()) retry_.join();
  link_.reset();  // its callbacks stop before the members they touch go
}

void MqttOutbox::Publish(std::string topic, std::string payload) {
  std::lock_guard<std::mutex> lock(mu_);
  outbox_.emplace_back(std::move(topic), std::move(payload));
  if (static_cast<int>(outbox_.size()) > options_.max_outbox) {
    outbox_.pop_front();
    if (dropped_ != nullptr) dropped_->Increment();
  }
  FlushLocked();
}

void MqttOutbox::FlushLocked() {
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

void MqttOutbox::OnAck(int id) {
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

void MqttOutbox::OnConnection(bool up, const std::string& reason) {
  LogLine(up ? LogLevel::kInfo : LogLevel::kWarning,
          absl::StrCat(options_.destination, " ",
                       up ? "connected" : "not connected: ", up ? "" : reason));
  {
    std::lock_guard<std::mutex> lock(mu_);
    link_up_ = up;
  }
  changed_.notify_all();
}

void MqttOutbox::RetryLoop() {
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

bool MqttOutbox::Drain(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                           [&] { return outbox_.empty() && unacked_.empty(); });
}

}  // namespace matid
