// An MQTT connection (libmosquitto, threaded interface) with automatic
// reconnect, re-subscription and optional TLS with client certificates.
// Callbacks run on the client's network thread, one at a time; for QoS 1
// messages, the PUBACK goes out only after on_message returns (libmosquitto
// queues it and its network thread writes it after the callback), so
// whatever on_message stores durably is stored before the broker forgets
// the message. Publish/Subscribe/connected are safe from any thread.
#ifndef MATID_COMMON_MQTT_CLIENT_H_
#define MATID_COMMON_MQTT_CLIENT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct mosquitto;
struct mosquitto_message;

namespace matid {

struct MqttOptions {
  std::string host = "127.0.0.1";
  int port = 1883;
  std::string client_id;      // required when clean_session is false
  bool clean_session = true;  // false: the broker keeps our subscription and QoS 1 backlog
  int keepalive_seconds = 30;
  int max_inflight = 20;  // QoS 1 messages awaiting PUBACK
  absl::Duration reconnect_min = absl::Milliseconds(200);
  absl::Duration reconnect_max = absl::Seconds(30);
  // TLS (all empty: plain TCP). With client certificate and key: mutual TLS.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // MQTT username and password (empty username: none). Send them over TLS.
  std::string username;
  std::string password;
  // Errors and warnings of the MQTT library (TLS failures among them) are
  // logged (common/log.h) with this prefix, e.g. "cloud MQTT"; empty: not
  // logged.
  std::string log_prefix;
  // The MQTT will (last will and testament), asked for before the first
  // connection and again after every disconnect, before the next CONNECT:
  // a Sparkplug edge node's NDEATH carries a new bdSeq each time. Called on
  // the creating thread, then on the network thread. Unset: no will.
  struct Will {
    std::string topic;
    std::string payload;
    int qos = 1;
    bool retain = false;
  };
  std::function<Will()> will;
};

class MqttClient {
 public:
  struct Callbacks {
    // Connection established (true) or lost (false), with the reason.
    std::function<void(bool connected, const std::string& reason)> on_connection;
    std::function<void(const std::string& topic, absl::string_view payload)> on_message;
    // The broker acknowledged the QoS 1 message with this id.
    std::function<void(int message_id)> on_published;
  };

  // Starts the network thread and connects in the background (reconnecting
  // with exponential backoff). Fails only for bad options or TLS files.
  static absl::StatusOr<std::unique_ptr<MqttClient>> Create(const MqttOptions& options,
                                                            Callbacks callbacks);

  // Disconnects and joins the network thread.
  ~MqttClient();

  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;

  // Subscribes now if connected, and again after every reconnect.
  absl::Status Subscribe(const std::string& topic_filter, int qos);

  // Queues a message; returns its id (on_published reports its PUBACK for
  // QoS 1). UNAVAILABLE when the library refuses (e.g. not connected).
  absl::StatusOr<int> Publish(const std::string& topic, absl::string_view payload, int qos);

  // Ends this connection cleanly (no will) and connects again, with the
  // next will: what a Sparkplug node does when its primary host goes
  // offline. Not from a callback (it joins the network thread).
  absl::Status Reconnect();

  // Drops every message the library still holds unacknowledged (it would
  // send them again on its next connection, before anything newer) and
  // connects again with a fresh session. Not from a callback.
  absl::Status ResetSession();

  bool connected() const { return connected_.load(); }
  const MqttOptions& options() const { return options_; }

 private:
  explicit MqttClient(const MqttOptions& options, Callbacks callbacks);
  // Applies options_ and the callbacks to mosq_; starts connecting.
  absl::Status Configure();
  absl::Status Connect();

  static void OnConnect(struct mosquitto*, void* self, int rc);
  static void OnDisconnect(struct mosquitto*, void* self, int rc);
  static void OnMessage(struct mosquitto*, void* self, const struct mosquitto_message* message);
  static void OnPublish(struct mosquitto*, void* self, int mid);
  static void OnLog(struct mosquitto*, void* self, int level, const char* text);
  // Sets options_.will's next will for the next CONNECT.
  absl::Status SetNextWill();

  // Constant after construction.
  const MqttOptions options_;
  const Callbacks callbacks_;
  struct mosquitto* mosq_ = nullptr;  // owned; destroyed in the destructor

  std::atomic<bool> connected_{false};
  std::mutex subscriptions_mu_;
  std::vector<std::pair<std::string, int>> subscriptions_;  // guarded by subscriptions_mu_
};

}  // namespace matid

#endif  // MATID_COMMON_MQTT_CLIENT_H_
