#include "sparkplug/primary_host.h"

#include <nlohmann/json.hpp>

#include "sparkplug/sparkplug_id.h"

namespace matid::sparkplug {

absl::StatusOr<PrimaryHost> PrimaryHost::Create(const std::string& host_id) {
  if (absl::Status valid = CheckSparkplugId(host_id, "primary_host_id"); !valid.ok()) {
    return valid;
  }
  return PrimaryHost(host_id);
}

absl::StatusOr<HostChange> PrimaryHost::Apply(absl::string_view payload) {
  const nlohmann::json json = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("online") || !json["online"].is_boolean() ||
      !json.contains("timestamp") || !json["timestamp"].is_number_unsigned()) {
    return absl::InvalidArgumentError(
        "a STATE payload is {\"online\": true|false, \"timestamp\": <UTC ms>}");
  }
  const uint64_t timestamp = json["timestamp"].get<uint64_t>();
  if (last_timestamp_ && timestamp < *last_timestamp_) return HostChange::kNone;
  last_timestamp_ = timestamp;
  const bool online = json["online"].get<bool>();
  if (online == online_) return HostChange::kNone;
  online_ = online;
  return online ? HostChange::kOnline : HostChange::kOffline;
}

}  // namespace matid::sparkplug
