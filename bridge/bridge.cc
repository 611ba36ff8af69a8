#include "bridge/bridge.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "bridge/cloud_limits.h"
#include "common/backoff.h"
#include "common/log.h"
#include "common/metric_families.h"
#include "common/result_message.h"

namespace matid {

absl::StatusOr<std::unique_ptr<Bridge>> Bridge::Create(const BridgeOptions& options, Spool* spool,
                                                       CloudLink* cloud,
                                                       prometheus::Registry* registry) {
  if (options.batch_max_messages < 1) {
    return absl::InvalidArgumentError("batch_max_messages must be >= 1");
  }
  if (options.batch_max_bytes < 1024 || options.batch_max_bytes > kCloudMaxPayloadBytes) {
    return absl::InvalidArgumentError(
        "batch_max_bytes must be in 1024..131072 (AWS IoT Core's payload cap is 128 KB)");
  }
  if (!options.local_events_filter.empty() &&
      options.cloud_events_topic_template.find_first_of("+#") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--cloud_events_topic_template '",
                                                   options.cloud_events_topic_template,
                                                   "' must not contain MQTT wildcards"));
  }
  if (!(options.max_publishes_per_second > 0)) {
    return absl::InvalidArgumentError("max_publishes_per_second must be > 0");
  }
  if (options.retry_backoff_initial <= absl::ZeroDuration() ||
      options.retry_backoff_max < options.retry_backoff_initial) {
    return absl::InvalidArgumentError(
        "retry_backoff_initial must be > 0 and retry_backoff_max at least as long");
  }
  // The templates with a one-byte id must make topics the cloud accepts.
  for (const auto& [flag, topic] :
       {std::pair<const char*, std::string>{
            "--cloud_topic_template",
            absl::StrReplaceAll(options.cloud_topic_template, {{"{camera_id}", "x"}})},
        {"--cloud_events_topic_template",
         absl::StrReplaceAll(options.cloud_events_topic_template, {{"{box_id}", "x"}})}}) {
    absl::Status valid = CheckCloudTopic(topic);
    if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", valid.message()));
  }
  std::unique_ptr<Bridge> bridge(new Bridge(options, spool, cloud));
  if (registry != nullptr) bridge->BuildMetrics(*registry);
  bridge->forwarder_ = std::thread([b = bridge.get()] { b->ForwarderLoop(); });
  return bridge;
}

Bridge::Bridge(const BridgeOptions& options, Spool* spool, CloudLink* cloud)
    : options_(options), spool_(spool), cloud_(cloud) {}

Bridge::~Bridge() { Stop(); }

void Bridge::BuildMetrics(prometheus::Registry& registry) {
  auto counter = [&](const char* name, const char* help) {
    return AddCounter(registry, name, help);
  };
  auto gauge = [&](const char* name, const char* help) { return AddGauge(registry, name, help); };
  metrics_.received =
      counter("matid_bridge_received_total", "Messages received from the local broker");
  metrics_.spooled = counter("matid_bridge_spooled_total", "Messages written to the spool");
  metrics_.duplicates =
      counter("matid_bridge_duplicates_total", "Messages whose message_id was already spooled");
  metrics_.dead_letters =
      counter("matid_bridge_dead_letters_total", "Malformed messages put in the dead-letter table");
  metrics_.forwarded =
      counter("matid_bridge_forwarded_total", "Messages acknowledged by the cloud");
  metrics_.publishes =
      counter("matid_bridge_publishes_total", "Publishes (batches) acknowledged by the cloud");
  metrics_.moved_to_back =
      counter("matid_bridge_moved_to_back_total",
              "Messages not acknowledged when published alone (refused by the cloud, or the "
              "connection lost), put behind the others so they do not hold them back");
  metrics_.publish_failures = counter("matid_bridge_publish_failures_total",
                                      "Publishes refused or not acknowledged in time");
  metrics_.dropped =
      counter("matid_bridge_dropped_total", "Messages dropped by the spool's size or age limit");
  metrics_.backlog_messages = gauge("matid_bridge_backlog_messages", "Messages in the spool");
  metrics_.backlog_bytes = gauge("matid_bridge_backlog_bytes", "Payload bytes in the spool");
  metrics_.dead_letters_kept =
      gauge("matid_bridge_dead_letters_kept",
            "Dead letters in the spool (the newest, within an eighth of --spool_max_mb)");
  metrics_.oldest_age =
      gauge("matid_bridge_oldest_message_age_seconds", "Age of the oldest spooled message");
  metrics_.cloud_connected =
      gauge("matid_bridge_cloud_connected", "1 while connected to the cloud broker");
}

void Bridge::Add(prometheus::Counter* counter, double amount) {
  if (counter != nullptr) counter->Increment(amount);
}

std::string Bridge::CloudTopic(absl::string_view camera_id) const {
  return absl::StrReplaceAll(options_.cloud_topic_template, {{"{camera_id}", camera_id}});
}

std::string Bridge::CloudEventsTopic(absl::string_view box_id) const {
  return absl::StrReplaceAll(options_.cloud_events_topic_template, {{"{box_id}", box_id}});
}

absl::StatusOr<std::pair<std::string, std::string>> Bridge::Route(const std::string& topic,
                                                                  absl::string_view payload) const {
  absl::StatusOr<std::pair<std::string, std::string>> route = RouteByContent(topic, payload);
  if (!route.ok()) return route;
  // What the cloud would refuse is a dead letter now, not a blocked queue.
  absl::Status sendable = CheckCloudPayload(payload.size());
  if (sendable.ok()) sendable = CheckCloudTopic(route->second);
  if (!sendable.ok()) return sendable;
  return route;
}

absl::StatusOr<std::pair<std::string, std::string>> Bridge::RouteByContent(
    const std::string& topic, absl::string_view payload) const {
  if (!options_.local_events_filter.empty() &&
      TopicMatchesFilter(topic, options_.local_events_filter)) {
    absl::StatusOr<EventMessage> event = ParseEventMessage(payload);
    if (!event.ok()) return event.status();
    absl::Status on_topic =
        CheckResultTopic(topic, options_.local_events_filter, event->box_id, "box_id");
    if (!on_topic.ok()) return on_topic;
    return std::make_pair(event->message_id, CloudEventsTopic(event->box_id));
  }
  absl::StatusOr<ResultMessage> message = ParseResultMessage(payload);
  if (!message.ok()) return message.status();
  absl::Status on_topic = CheckResultTopic(topic, options_.local_topic_filter, message->camera_id);
  if (!on_topic.ok()) return on_topic;
  return std::make_pair(message->message_id, CloudTopic(message->camera_id));
}

absl::Status Bridge::OnLocalMessage(const std::string& topic, absl::string_view payload) {
  const absl::Time now = absl::Now();
  Add(metrics_.received);
  absl::StatusOr<std::pair<std::string, std::string>> route = Route(topic, payload);
  if (!route.ok()) {
    const std::string reason(route.status().message());
    Add(metrics_.dead_letters);
    LogWarning("dead letter from %s: %s", topic, reason);
    return spool_->DeadLetter(topic, payload, reason, now);
  }
  absl::StatusOr<bool> inserted = spool_->Append(route->first, route->second, payload, now);
  if (!inserted.ok()) return inserted.status();
  Add(*inserted ? metrics_.spooled : metrics_.duplicates);
  {
    std::lock_guard<std::mutex> lock(mu_);
    work_hint_ = true;
  }
  wake_.notify_one();
  return absl::OkStatus();
}

void Bridge::OnCloudAck(int message_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    acked_ids_.insert(message_id);
  }
  wake_.notify_one();
}

void Bridge::OnCloudConnection(bool connected) {
  if (metrics_.cloud_connected != nullptr) metrics_.cloud_connected->Set(connected ? 1 : 0);
  {
    std::lock_guard<std::mutex> lock(mu_);
    work_hint_ = true;
  }
  wake_.notify_one();
}

void Bridge::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (forwarder_.joinable()) forwarder_.join();
}

void Bridge::EnforceSpoolLimits() {
  absl::StatusOr<int64_t> dropped = spool_->EnforceLimits(absl::Now());
  if (dropped.ok() && *dropped > 0) {
    Add(metrics_.dropped, *dropped);
    LogWarning("spool limit reached: dropped the %d oldest messages", *dropped);
  }
}

absl::StatusOr<SpoolStats> Bridge::RefreshBacklog() {
  absl::StatusOr<SpoolStats> stats = spool_->Stats();
  if (stats.ok() && metrics_.backlog_messages != nullptr) {
    metrics_.backlog_messages->Set(stats->messages);
    metrics_.backlog_bytes->Set(stats->bytes);
    metrics_.dead_letters_kept->Set(stats->dead_letters);
    metrics_.oldest_age->Set(
        stats->messages == 0 ? 0 : absl::ToDoubleSeconds(absl::Now() - stats->oldest));
  }
  return stats;
}

void Bridge::ForwarderLoop() {
  Backoff backoff(options_.retry_backoff_initial, options_.retry_backoff_max);
  const absl::Duration min_gap = absl::Seconds(1.0 / options_.max_publishes_per_second);
  absl::Time next_publish = absl::InfinitePast();
  absl::Time next_limits_check = absl::InfinitePast();
  auto enforce_limits_if_due = [&] {
    if (absl::Now() < next_limits_check) return;
    EnforceSpoolLimits();
    next_limits_check = absl::Now() + options_.housekeeping_interval;
  };
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_for(lock, absl::ToChronoMilliseconds(options_.housekeeping_interval),
                     [&] { return stopping_ || (work_hint_ && cloud_->connected()); });
      if (stopping_) return;
      work_hint_ = false;
    }
    enforce_limits_if_due();
    (void)RefreshBacklog();  // gauges only: the drain loop below reads the spool itself
    // Drain while there is something to send and the cloud is there.
    while (cloud_->connected()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      const absl::Time now = absl::Now();
      if (now < next_publish && !PauseUnlessStopping(next_publish - now)) return;  // pacing
      next_publish = absl::Now() + min_gap;
      if (!ForwardOnce()) {
        if (!PauseUnlessStopping(backoff.Next())) return;
        std::lock_guard<std::mutex> lock(mu_);
        work_hint_ = true;  // try again
        break;
      }
      backoff.Reset();
      enforce_limits_if_due();
      absl::StatusOr<SpoolStats> stats = RefreshBacklog();
      if (!stats.ok() || stats->messages == 0) break;
    }
  }
}

bool Bridge::PauseUnlessStopping(absl::Duration delay) {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.wait_for(lock, absl::ToChronoMicroseconds(delay), [&] { return stopping_; });
  return !stopping_;
}

void Bridge::NotAcknowledged(const std::vector<int64_t>& seqs) {
  using Next = RefusedMessageIsolation::Next;
  if (isolation_.OnNotAcknowledged(seqs.front(), seqs.size()) != Next::kMoveHeadToBack) return;
  absl::StatusOr<int64_t> moved = spool_->MoveToBack(seqs.front());
  if (!moved.ok()) {
    LogError("%s", moved.status().ToString());
    return;
  }
  isolation_.OnMovedToBack(*moved);
  Add(metrics_.moved_to_back);
  LogWarning(
      "a message sent alone was not acknowledged (refused by the cloud, or the connection "
      "lost): it goes behind the others and is tried again after them");
}

bool Bridge::ForwardOnce() {
  absl::StatusOr<std::vector<SpooledMessage>> batch =
      spool_->Oldest(options_.batch_max_messages, options_.batch_max_bytes);
  if (!batch.ok()) {
    LogError("%s", batch.status().ToString());
    return false;
  }
  if (batch->empty()) return true;
  // One publish carries messages for one topic: cut the batch where it
  // changes, and where the isolation rule says (refused_message_isolation.h).
  std::vector<int64_t> oldest;
  for (const SpooledMessage& m : *batch) oldest.push_back(m.seq);
  const size_t take = isolation_.Take(oldest);
  const std::string topic = batch->front().topic;
  std::vector<int64_t> seqs;
  std::vector<absl::string_view> lines;
  for (size_t i = 0; i < take && (*batch)[i].topic == topic; ++i) {
    seqs.push_back((*batch)[i].seq);
    lines.push_back((*batch)[i].payload);
  }
  const std::string payload = absl::StrJoin(lines, "\n");  // JSON lines

  std::unique_lock<std::mutex> lock(mu_);
  acked_ids_.clear();  // late acks of abandoned publishes are of no use now
  lock.unlock();
  absl::StatusOr<int> id = cloud_->Publish(topic, payload);
  if (!id.ok()) {
    Add(metrics_.publish_failures);
    LogError("%s", id.status().ToString());
    return false;
  }
  lock.lock();
  wake_.wait_for(lock, absl::ToChronoMilliseconds(options_.ack_timeout),
                 [&] { return acked_ids_.count(*id) > 0 || stopping_ || !cloud_->connected(); });
  const bool delivered = acked_ids_.count(*id) > 0;
  const bool stopping = stopping_;
  lock.unlock();
  if (!delivered) {
    Add(metrics_.publish_failures);
    if (!stopping) {
      cloud_->DropUnacknowledged();
      NotAcknowledged(seqs);
    }
    return false;
  }
  isolation_.OnDelivered(seqs);
  absl::Status removed = spool_->Remove(seqs);
  if (!removed.ok()) {
    LogError("%s", removed.ToString());
    return false;
  }
  Add(metrics_.forwarded, static_cast<double>(seqs.size()));
  Add(metrics_.publishes);
  return true;
}

}  // namespace matid
