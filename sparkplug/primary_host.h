// The primary host application's STATE (Sparkplug 3.0): the host publishes
// {"online": true|false, "timestamp": <UTC ms>} retained on
// spBv1.0/STATE/<host_id>; an edge node configured with that host births
// only while it is online, and disconnects (NDEATH first) when it goes
// offline. A STATE older than the last one seen is ignored. Pure; the
// owner serialises calls.
#ifndef MATID_SPARKPLUG_PRIMARY_HOST_H_
#define MATID_SPARKPLUG_PRIMARY_HOST_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace matid::sparkplug {

enum class HostChange { kNone, kOnline, kOffline };

class PrimaryHost {
 public:
  // INVALID_ARGUMENT naming --primary_host_id for an id a topic cannot hold.
  static absl::StatusOr<PrimaryHost> Create(const std::string& host_id);

  std::string StateTopic() const { return "spBv1.0/STATE/" + host_id_; }

  // Applies a STATE payload; INVALID_ARGUMENT when it is not one.
  absl::StatusOr<HostChange> Apply(absl::string_view payload);
  // A new MQTT connection: offline until the (retained) STATE says online.
  void Reconnected() { online_ = false; }
  bool online() const { return online_; }

 private:
  explicit PrimaryHost(std::string host_id) : host_id_(std::move(host_id)) {}

  std::string host_id_;
  bool online_ = false;
  std::optional<uint64_t> last_timestamp_;
};

}  // namespace matid::sparkplug

#endif  // MATID_SPARKPLUG_PRIMARY_HOST_H_
