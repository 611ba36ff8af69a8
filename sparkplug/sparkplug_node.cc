#include "sparkplug/sparkplug_node.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/log.h"
#include "common/metric_families.h"
#include "common/result_message.h"

namespace matid::sparkplug {

absl::StatusOr<std::unique_ptr<SparkplugNode>> SparkplugNode::Create(SparkplugNodeOptions options) {
  if (options.plant.host.empty()) {
    return absl::InvalidArgumentError("--plant_host is required: the plant's MQTT server");
  }
  if (options.batch_max_messages < 1 || options.batch_max_messages > 1000) {
    return absl::InvalidArgumentError("--batch_max_messages must be in 1..1000");
  }
  if (!options.on_spool_failure) {
    return absl::InvalidArgumentError("SparkplugNodeOptions.on_spool_failure is required");
  }
  absl::StatusOr<EdgeNodeSession> session = EdgeNodeSession::Create(options.session);
  if (!session.ok()) return session.status();
  std::optional<PrimaryHost> host;
  if (!options.primary_host_id.empty()) {
    absl::StatusOr<PrimaryHost> created = PrimaryHost::Create(options.primary_host_id);
    if (!created.ok()) return created.status();
    host = *std::move(created);
  }
  options.marker_topic =
      absl::StrReplaceAll(options.marker_topic, {{"{node}", options.session.edge_node_id}});
  std::unique_ptr<SparkplugNode> node(
      new SparkplugNode(std::move(options), *std::move(session), std::move(host)));
  if (absl::Status started = node->Start(); !started.ok()) return started;
  return node;
}

SparkplugNode::SparkplugNode(SparkplugNodeOptions options, EdgeNodeSession session,
                             std::optional<PrimaryHost> host)
    : options_(std::move(options)), session_(std::move(session)), host_(std::move(host)) {}

SparkplugNode::~SparkplugNode() { Stop(); }

absl::Status SparkplugNode::Start() {
  auto spool = Spool::Open(options_.spool);
  if (!spool.ok()) return spool.status();
  spool_ = *std::move(spool);
  auto metrics = MetricsEndpoint::Create(options_.metrics_host, options_.metrics_port);
  if (!metrics.ok()) return metrics.status();
  endpoint_ = *std::move(metrics);
  BuildMetrics();
  if (options_.server) {
    server_status_ =
        std::make_unique<ServerStatusPoller>(options_.server, options_.health_interval, [this] {
          std::lock_guard<std::mutex> lock(mu_);
          work_hint_ = true;
          wake_.notify_all();
        });
  }
  if (absl::Status plant = ConnectPlant(); !plant.ok()) return plant;
  forwarder_ = std::thread([this] { ForwarderLoop(); });
  return SubscribeLocal();
}

void SparkplugNode::BuildMetrics() {
  prometheus::Registry& registry = endpoint_->registry();
  auto counter = [&](const char* name, const char* help) {
    return AddCounter(registry, name, help);
  };
  auto gauge = [&](const char* name, const char* help) { return AddGauge(registry, name, help); };
  metrics_.received = counter("matid_sparkplug_results_received_total",
                              "Results taken from the local broker and spooled");
  metrics_.dead_letters = counter("matid_sparkplug_dead_letters_total",
                                  "Results refused (malformed, too many cameras), with a reason");
  metrics_.ddata = counter("matid_sparkplug_ddata_confirmed_total",
                           "DDATA messages confirmed delivered to the plant server");
  metrics_.historical = counter("matid_sparkplug_historical_total",
                                "DDATA sent flagged is_historical (stored across an outage)");
  metrics_.births = counter("matid_sparkplug_births_total", "NBIRTH messages published");
  metrics_.rebirth_requests =
      counter("matid_sparkplug_rebirth_requests_total", "NCMD Node Control/Rebirth requests");
  metrics_.backlog =
      gauge("matid_sparkplug_backlog_messages", "Results spooled, not yet confirmed delivered");
  metrics_.plant_connected =
      gauge("matid_sparkplug_plant_connected", "1 while connected to the plant MQTT server");
}

MqttOptions::Will SparkplugNode::NextWill() {
  std::lock_guard<std::mutex> lock(mu_);
  Outgoing death = session_.NextConnection(absl::Now());
  return {death.topic, death.payload, /*qos=*/1, /*retain=*/false};
}

absl::Status SparkplugNode::ConnectPlant() {
  MqttClient::Callbacks callbacks;
  callbacks.on_connection = [this](bool up, const std::string& reason) {
    OnPlantConnection(up, reason);
  };
  callbacks.on_message = [this](const std::string& topic, absl::string_view payload) {
    OnPlantMessage(topic, payload);
  };
  callbacks.on_published = [this](int id) { OnPlantAck(id); };
  MqttOptions plant = options_.plant;
  plant.clean_session = true;  // Sparkplug 3.0: clean sessions; the spool holds the backlog
  plant.will = [this] { return NextWill(); };
  if (plant.log_prefix.empty()) plant.log_prefix = "plant MQTT";
  auto client = MqttClient::Create(plant, callbacks);
  if (!client.ok()) return client.status();
  plant_ = *std::move(client);
  // Subscribed again on every CONNECT, before the NBIRTH (MqttClient
  // subscribes before it reports the connection).
  std::string ncmd, state;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ncmd = session_.NcmdTopic();
    if (host_) state = host_->StateTopic();
  }
  if (!state.empty()) {
    if (absl::Status subscribed = plant_->Subscribe(state, 1); !subscribed.ok()) return subscribed;
  }
  return plant_->Subscribe(ncmd, 1);
}

// Last, so nothing is taken from the local broker before it can be stored.
absl::Status SparkplugNode::SubscribeLocal() {
  MqttClient::Callbacks callbacks;
  callbacks.on_connection = [this](bool up, const std::string& reason) {
    LogLine(up ? LogLevel::kInfo : LogLevel::kWarning,
            absl::StrFormat("local broker %s:%d %s%s", options_.local.host, options_.local.port,
                            up ? "connected" : "not connected: ", up ? "" : reason));
  };
  callbacks.on_message = [this](const std::string& topic, absl::string_view payload) {
    OnLocalMessage(topic, payload);
  };
  MqttOptions local = options_.local;
  local.clean_session = false;  // the broker keeps what arrives while we are away
  auto client = MqttClient::Create(local, callbacks);
  if (!client.ok()) return client.status();
  local_ = *std::move(client);
  return local_->Subscribe(options_.local_topic_filter, 1);
}

void SparkplugNode::OnLocalMessage(const std::string& topic, absl::string_view payload) {
  const absl::Time now = absl::Now();
  absl::StatusOr<ResultMessage> result = ParseResultMessage(payload);
  absl::Status stored;
  if (!result.ok()) {
    stored = spool_->DeadLetter(topic, payload, result.status().message(), now);
    metrics_.dead_letters->Increment();
    LogWarning("result on %s refused: %s", topic, result.status().message());
  } else {
    absl::StatusOr<bool> added = spool_->Append(result->message_id, topic, payload, now);
    stored = added.status();
    if (added.ok() && *added) metrics_.received->Increment();
  }
  // Not stored: the callback must not return, so the broker keeps the message.
  if (!stored.ok()) options_.on_spool_failure(stored);
  std::lock_guard<std::mutex> lock(mu_);
  work_hint_ = true;
  wake_.notify_all();
}

void SparkplugNode::OnPlantConnection(bool up, const std::string& reason) {
  LogLine(up ? LogLevel::kInfo : LogLevel::kWarning,
          absl::StrFormat("plant MQTT %s:%d %s%s", options_.plant.host, options_.plant.port,
                          up ? "connected" : "not connected: ", up ? "" : reason));
  metrics_.plant_connected->Set(up ? 1 : 0);
  std::lock_guard<std::mutex> lock(mu_);
  plant_up_ = up;
  if (up) {
    birth_due_ = true;
    reconnected_ = true;
    if (host_) host_->Reconnected();
  } else {
    session_.Disconnected();
  }
  wake_.notify_all();
}

void SparkplugNode::OnPlantMessage(const std::string& topic, absl::string_view payload) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (host_ && topic == host_->StateTopic()) {
      absl::StatusOr<HostChange> change = host_->Apply(payload);
      if (!change.ok()) {
        LogWarning("%s: %s", topic, change.status().message());
      } else if (*change != HostChange::kNone) {
        LogInfo("primary host %s", *change == HostChange::kOnline ? "online" : "offline");
        if (*change == HostChange::kOffline && session_.born()) leave_due_ = true;
        wake_.notify_all();
      }
      return;
    }
  }
  absl::StatusOr<bool> rebirth = EdgeNodeSession::IsRebirthRequest(payload);
  if (!rebirth.ok()) {
    LogWarning("%s: %s", topic, rebirth.status().message());
    return;
  }
  if (!*rebirth) return;
  LogInfo("rebirth requested on %s", topic);
  metrics_.rebirth_requests->Increment();
  std::lock_guard<std::mutex> lock(mu_);
  birth_due_ = true;
  wake_.notify_all();
}

void SparkplugNode::OnPlantAck(int message_id) {
  std::lock_guard<std::mutex> lock(mu_);
  acked_.insert(message_id);
  wake_.notify_all();
}

NodeStatus SparkplugNode::CurrentStatus() const {
  if (server_status_) return server_status_->Latest();
  NodeStatus status;
  status.server_state = "NOT_MONITORED";
  return status;
}

void SparkplugNode::ForwarderLoop() {
  absl::Time next_housekeeping = absl::Now();
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    wake_.wait_for(lock, absl::ToChronoMicroseconds(options_.housekeeping_interval),
                   [this] { return stopping_ || work_hint_ || BirthReady() || leave_due_; });
    if (stopping_) break;
    work_hint_ = false;
    const bool up = plant_up_;
    const bool leave = leave_due_;
    leave_due_ = false;
    lock.unlock();
    if (up && leave) LeaveSession();
    const absl::Time now = absl::Now();
    if (up && PublishAll(SessionMessages(now))) {
      while (ForwardBatch()) {
      }
    }
    if (now >= next_housekeeping) {
      Housekeeping(now);
      next_housekeeping = now + options_.housekeeping_interval;
    }
    lock.lock();
  }
}

std::vector<Outgoing> SparkplugNode::SessionMessages(absl::Time now) {
  const NodeStatus status = CurrentStatus();
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Outgoing> out;
  if (BirthReady()) {
    out = session_.Birth(status, now);
    birth_due_ = false;
    if (reconnected_) born_at_ = now;
    reconnected_ = false;
    metrics_.births->Increment();
  }
  if (!session_.born()) return out;
  for (Outgoing& message : session_.Status(status, now)) out.push_back(std::move(message));
  for (Outgoing& message : session_.ExpireDevices(now)) out.push_back(std::move(message));
  return out;
}

bool SparkplugNode::PublishAll(const std::vector<Outgoing>& messages) {
  for (const Outgoing& message : messages) {
    absl::StatusOr<int> id = plant_->Publish(message.topic, message.payload, 0);
    if (!id.ok()) {
      LogWarning("%s", id.status().message());
      return false;
    }
  }
  return true;
}

absl::StatusOr<std::vector<Outgoing>> SparkplugNode::ResultMessages(const SpooledMessage& message,
                                                                    absl::Time now) {
  absl::StatusOr<ResultMessage> result = ParseResultMessage(message.payload);
  if (!result.ok()) return result.status();
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || birth_due_ || leave_due_ || !session_.born()) {
    return absl::UnavailableError("no Sparkplug session now");
  }
  const bool historical = message.received_at < born_at_;
  if (historical) metrics_.historical->Increment();
  return session_.Result(*result, historical, now);
}

bool SparkplugNode::ForwardBatch() {
  absl::StatusOr<std::vector<SpooledMessage>> batch =
      spool_->Oldest(options_.batch_max_messages, int64_t{1} << 40);
  if (!batch.ok()) {
    LogError("spool: %s", batch.status().message());
    return false;
  }
  const absl::Time now = absl::Now();
  std::vector<int64_t> sent, refused;
  for (const SpooledMessage& message : *batch) {
    absl::StatusOr<std::vector<Outgoing>> out = ResultMessages(message, now);
    if (!out.ok() && absl::IsUnavailable(out.status())) break;
    if (!out.ok()) {
      LogWarning("result %s refused: %s", message.message_id, out.status().message());
      (void)spool_->DeadLetter(message.topic, message.payload, out.status().message(), now);
      metrics_.dead_letters->Increment();
      refused.push_back(message.seq);
      continue;
    }
    if (!PublishAll(*out)) break;
    sent.push_back(message.seq);
  }
  if (!refused.empty()) (void)spool_->Remove(refused);
  if (sent.empty()) return !refused.empty();
  {
    std::lock_guard<std::mutex> lock(mu_);
    acked_.clear();
  }
  absl::StatusOr<int> marker =
      plant_->Publish(options_.marker_topic, (*batch)[sent.size() - 1].message_id, 1);
  if (!marker.ok() || !WaitForAck(*marker, options_.marker_timeout, /*until_stopping=*/true)) {
    return false;  // sent again in the next session
  }
  if (absl::Status removed = spool_->Remove(sent); !removed.ok()) {
    LogError("spool: %s", removed.message());
    return false;
  }
  metrics_.ddata->Increment(static_cast<double>(sent.size()));
  return true;
}

bool SparkplugNode::WaitForAck(int message_id, absl::Duration timeout, bool until_stopping) {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.wait_for(lock, absl::ToChronoMicroseconds(timeout), [&] {
    return (until_stopping && stopping_) || !plant_up_ || acked_.count(message_id) > 0;
  });
  return acked_.count(message_id) > 0;
}

void SparkplugNode::Housekeeping(absl::Time now) {
  absl::StatusOr<int64_t> dropped = spool_->EnforceLimits(now);
  if (dropped.ok() && *dropped > 0) {
    LogWarning("spool over its limits: %d oldest results dropped", *dropped);
  }
  absl::StatusOr<SpoolStats> stats = spool_->Stats();
  if (stats.ok()) metrics_.backlog->Set(static_cast<double>(stats->messages));
}

void SparkplugNode::LeaveSession() {
  Outgoing death;
  {
    std::lock_guard<std::mutex> lock(mu_);
    death = session_.Death(absl::Now());
    session_.Disconnected();
  }
  absl::StatusOr<int> id = plant_->Publish(death.topic, death.payload, 1);
  if (id.ok()) WaitForAck(*id, absl::Seconds(2), /*until_stopping=*/true);
  if (absl::Status reconnect = plant_->Reconnect(); !reconnect.ok()) {
    LogError("plant MQTT: %s", reconnect.message());
  }
}

void SparkplugNode::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  local_.reset();  // stop taking results; the spool keeps the rest
  if (forwarder_.joinable()) forwarder_.join();
  server_status_.reset();
  if (plant_ && plant_->connected()) {
    Outgoing death;
    {
      std::lock_guard<std::mutex> lock(mu_);
      death = session_.Death(absl::Now());
    }
    absl::StatusOr<int> id = plant_->Publish(death.topic, death.payload, 1);
    if (id.ok()) WaitForAck(*id, absl::Seconds(2), /*until_stopping=*/false);
  }
  plant_.reset();
}

}  // namespace matid::sparkplug
