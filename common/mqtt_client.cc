#include "common/mqtt_client.h"

#include <mosquitto.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace matid {
namespace {

// libmosquitto needs one global init per process.
void EnsureLibraryInitialised() {
  static const int once = [] { return mosquitto_lib_init(); }();
  (void)once;
}

}  // namespace

MqttClient::MqttClient(const MqttOptions& options, Callbacks callbacks)
    : options_(options), callbacks_(std::move(callbacks)) {}

absl::StatusOr<std::unique_ptr<MqttClient>> MqttClient::Create(const MqttOptions& options,
                                                               Callbacks callbacks) {
  EnsureLibraryInitialised();
  if (!options.clean_session && options.client_id.empty()) {
    return absl::InvalidArgumentError("an MQTT client id is required for a persistent session");
  }
  std::unique_ptr<MqttClient> client(new MqttClient(options, std::move(callbacks)));
  client->mosq_ = mosquitto_new(options.client_id.empty() ? nullptr : options.client_id.c_str(),
                                options.clean_session, client.get());
  if (client->mosq_ == nullptr) {
    return absl::InternalError("mosquitto_new failed (out of memory or bad client id)");
  }
  if (absl::Status configured = client->Configure(); !configured.ok()) return configured;
  if (absl::Status started = client->Connect(); !started.ok()) return started;
  return client;
}

absl::Status MqttClient::Configure() {
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  mosquitto_connect_callback_set(mosq_, &MqttClient::OnConnect);
  mosquitto_disconnect_callback_set(mosq_, &MqttClient::OnDisconnect);
  mosquitto_message_callback_set(mosq_, &MqttClient::OnMessage);
  mosquitto_publish_callback_set(mosq_, &MqttClient::OnPublish);
  if (!options_.log_prefix.empty()) mosquitto_log_callback_set(mosq_, &MqttClient::OnLog);
  mosquitto_max_inflight_messages_set(mosq_, options_.max_inflight);
  mosquitto_reconnect_delay_set(
      mosq_, std::max<unsigned>(1, absl::ToInt64Seconds(options_.reconnect_min)),
      std::max<unsigned>(1, absl::ToInt64Seconds(options_.reconnect_max)), true);
  if (!options_.ca_file.empty() || !options_.cert_file.empty()) {
    const int rc = mosquitto_tls_set(
        mosq_, options_.ca_file.empty() ? nullptr : options_.ca_file.c_str(), nullptr,
        options_.cert_file.empty() ? nullptr : options_.cert_file.c_str(),
        options_.key_file.empty() ? nullptr : options_.key_file.c_str(), nullptr);
    if (rc != MOSQ_ERR_SUCCESS) {
      return absl::InvalidArgumentError(absl::StrCat(
          "TLS setup failed (CA ", options_.ca_file, ", certificate ", options_.cert_file, ", key ",
          options_.key_file, "): ", mosquitto_strerror(rc)));
    }
  }
  if (!options_.username.empty()) {
    const int rc =
        mosquitto_username_pw_set(mosq_, options_.username.c_str(),
                                  options_.password.empty() ? nullptr : options_.password.c_str());
    if (rc != MOSQ_ERR_SUCCESS) {
      return absl::InvalidArgumentError(
          absl::StrCat("MQTT username/password: ", mosquitto_strerror(rc)));
    }
  }
  return SetNextWill();
}

absl::Status MqttClient::Connect() {
  // A failed first attempt is fine: the network thread keeps retrying.
  mosquitto_connect_async(mosq_, options_.host.c_str(), options_.port, options_.keepalive_seconds);
  const int rc = mosquitto_loop_start(mosq_);
  if (rc != MOSQ_ERR_SUCCESS) {
    return absl::InternalError(absl::StrCat("MQTT thread: ", mosquitto_strerror(rc)));
  }
  return absl::OkStatus();
}

absl::Status MqttClient::ResetSession() {
  mosquitto_disconnect(mosq_);
  mosquitto_loop_stop(mosq_, /*force=*/true);  // it may be between reconnect attempts
  connected_.store(false);
  const int rc = mosquitto_reinitialise(
      mosq_, options_.client_id.empty() ? nullptr : options_.client_id.c_str(),
      options_.clean_session, this);
  if (rc != MOSQ_ERR_SUCCESS) {
    return absl::InternalError(absl::StrCat("MQTT reset: ", mosquitto_strerror(rc)));
  }
  if (absl::Status configured = Configure(); !configured.ok()) return configured;
  return Connect();
}

MqttClient::~MqttClient() {
  if (mosq_ == nullptr) return;
  mosquitto_disconnect(mosq_);
  mosquitto_loop_stop(mosq_, /*force=*/false);
  mosquitto_destroy(mosq_);
}

absl::Status MqttClient::Reconnect() {
  // After a DISCONNECT of ours the network thread ends its loop (and
  // OnDisconnect has set the next will).
  mosquitto_disconnect(mosq_);
  mosquitto_loop_stop(mosq_, /*force=*/false);
  connected_.store(false);
  mosquitto_reconnect_async(mosq_);
  const int rc = mosquitto_loop_start(mosq_);
  if (rc != MOSQ_ERR_SUCCESS) {
    return absl::InternalError(absl::StrCat("MQTT thread: ", mosquitto_strerror(rc)));
  }
  return absl::OkStatus();
}

absl::Status MqttClient::Subscribe(const std::string& topic_filter, int qos) {
  {
    std::lock_guard<std::mutex> lock(subscriptions_mu_);
    subscriptions_.emplace_back(topic_filter, qos);
  }
  if (connected()) {
    const int rc = mosquitto_subscribe(mosq_, nullptr, topic_filter.c_str(), qos);
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
      return absl::InvalidArgumentError(
          absl::StrCat("subscribe to ", topic_filter, ": ", mosquitto_strerror(rc)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int> MqttClient::Publish(const std::string& topic, absl::string_view payload,
                                        int qos) {
  int mid = 0;
  const int rc = mosquitto_publish(mosq_, &mid, topic.c_str(), static_cast<int>(payload.size()),
                                   payload.data(), qos, /*retain=*/false);
  if (rc != MOSQ_ERR_SUCCESS) {
    return absl::UnavailableError(absl::StrCat("MQTT publish to ", topic, " (", options_.host, ":",
                                               options_.port, "): ", mosquitto_strerror(rc)));
  }
  return mid;
}

void MqttClient::OnConnect(struct mosquitto* mosq, void* self, int rc) {
  auto* client = static_cast<MqttClient*>(self);
  if (rc != 0) {
    if (client->callbacks_.on_connection) {
      client->callbacks_.on_connection(false, mosquitto_connack_string(rc));
    }
    return;
  }
  {
    std::lock_guard<std::mutex> lock(client->subscriptions_mu_);
    for (const auto& [topic, qos] : client->subscriptions_) {
      mosquitto_subscribe(mosq, nullptr, topic.c_str(), qos);
    }
  }
  client->connected_.store(true);
  if (client->callbacks_.on_connection) client->callbacks_.on_connection(true, "connected");
}

absl::Status MqttClient::SetNextWill() {
  if (!options_.will) return absl::OkStatus();
  const MqttOptions::Will will = options_.will();
  const int rc =
      mosquitto_will_set(mosq_, will.topic.c_str(), static_cast<int>(will.payload.size()),
                         will.payload.data(), will.qos, will.retain);
  if (rc != MOSQ_ERR_SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat("MQTT will on ", will.topic, ": ", mosquitto_strerror(rc)));
  }
  return absl::OkStatus();
}

void MqttClient::OnDisconnect(struct mosquitto*, void* self, int rc) {
  auto* client = static_cast<MqttClient*>(self);
  client->connected_.store(false);
  if (absl::Status will = client->SetNextWill(); !will.ok()) LogError("%s", will.ToString());
  if (client->callbacks_.on_connection) {
    client->callbacks_.on_connection(false, rc == 0 ? "disconnected" : mosquitto_strerror(rc));
  }
}

void MqttClient::OnMessage(struct mosquitto*, void* self, const struct mosquitto_message* message) {
  auto* client = static_cast<MqttClient*>(self);
  if (client->callbacks_.on_message) {
    client->callbacks_.on_message(
        message->topic,
        absl::string_view(static_cast<const char*>(message->payload), message->payloadlen));
  }
}

void MqttClient::OnLog(struct mosquitto*, void* self, int level, const char* text) {
  if ((level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) == 0) return;
  auto* client = static_cast<MqttClient*>(self);
  LogLine((level & MOSQ_LOG_ERR) != 0 ? LogLevel::kError : LogLevel::kWarning,
          absl::StrCat(client->options_.log_prefix, ": ", text));
}

void MqttClient::OnPublish(struct mosquitto*, void* self, int mid) {
  auto* client = static_cast<MqttClient*>(self);
  if (client->callbacks_.on_published) client->callbacks_.on_published(mid);
}

}  // namespace matid
