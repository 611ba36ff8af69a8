#include "sparkplug/edge_node_session.h"

#include "absl/strings/str_cat.h"
#include "sparkplug/sparkplug_id.h"

namespace matid::sparkplug {
namespace {

using sparkplug_b::DataType;
using sparkplug_b::Payload;

constexpr char kNamespace[] = "spBv1.0";

std::string Serialized(const Payload& payload) {
  std::string bytes;
  payload.SerializeToString(&bytes);
  return bytes;
}

// Fills `payload` with the metrics in BIRTH form (name, alias, datatype).
void AddBirthMetrics(const std::vector<MetricSpec>& specs, const std::vector<MetricValue>& values,
                     uint64_t alias_offset, uint64_t now_ms, Payload& payload) {
  for (size_t i = 0; i < specs.size(); ++i) {
    FillMetric(specs[i], values[i], /*with_name=*/true, alias_offset, now_ms,
               *payload.add_metrics());
  }
}

}  // namespace

absl::StatusOr<EdgeNodeSession> EdgeNodeSession::Create(const EdgeNodeOptions& options) {
  if (absl::Status s = CheckSparkplugId(options.group_id, "sparkplug_group"); !s.ok()) return s;
  if (absl::Status s = CheckSparkplugId(options.edge_node_id, "sparkplug_node"); !s.ok()) return s;
  if (options.device_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--device_timeout must be positive");
  }
  if (options.max_cameras < 1) {
    return absl::InvalidArgumentError("--max_cameras must be at least 1");
  }
  return EdgeNodeSession(options);
}

std::string EdgeNodeSession::Topic(absl::string_view type, absl::string_view device) const {
  std::string topic =
      absl::StrCat(kNamespace, "/", options_.group_id, "/", type, "/", options_.edge_node_id);
  if (!device.empty()) absl::StrAppend(&topic, "/", device);
  return topic;
}

std::string EdgeNodeSession::NcmdTopic() const { return Topic("NCMD"); }

uint64_t EdgeNodeSession::NextSeq() {
  seq_ = (seq_ + 1) % 256;
  return seq_;
}

Outgoing EdgeNodeSession::NextConnection(absl::Time now) {
  bd_seq_ = bd_seq_next_;
  bd_seq_next_ = (bd_seq_ + 1) % 256;
  born_ = false;
  return Death(now);
}

Outgoing EdgeNodeSession::Death(absl::Time now) const {
  Payload payload;
  payload.set_timestamp(EpochMillis(now));
  FillMetric({kBdSeqMetric, 0, DataType::Int64}, bd_seq_, /*with_name=*/true, 0, EpochMillis(now),
             *payload.add_metrics());
  return {Topic("NDEATH"), Serialized(payload)};
}

std::vector<Outgoing> EdgeNodeSession::Birth(const NodeStatus& status, absl::Time now) {
  const uint64_t now_ms = EpochMillis(now);
  Payload payload;
  payload.set_timestamp(now_ms);
  seq_ = 0;
  payload.set_seq(seq_);
  FillMetric({kBdSeqMetric, 0, DataType::Int64}, bd_seq_, true, 0, now_ms, *payload.add_metrics());
  FillMetric({kRebirthMetric, 0, DataType::Boolean}, false, true, 0, now_ms,
             *payload.add_metrics());
  AddBirthMetrics(NodeStatusMetrics(), NodeValues(status), 0, now_ms, payload);
  status_ = status;
  born_ = true;
  std::vector<Outgoing> out = {{Topic("NBIRTH"), Serialized(payload)}};
  for (auto& [id, device] : devices_) {
    if (device.born || now - device.last_seen < options_.device_timeout) {
      out.push_back(DeviceBirth(id, device, now));
    } else {
      device.born = false;
    }
  }
  return out;
}

Outgoing EdgeNodeSession::DeviceBirth(const std::string& id, Device& device, absl::Time now) {
  Payload payload;
  payload.set_timestamp(EpochMillis(now));
  payload.set_seq(NextSeq());
  AddBirthMetrics(DeviceMetrics(), device.last_values, device.alias_offset, EpochMillis(now),
                  payload);
  device.born = true;
  return {Topic("DBIRTH", id), Serialized(payload)};
}

absl::StatusOr<std::vector<Outgoing>> EdgeNodeSession::Result(const ResultMessage& result,
                                                              bool historical, absl::Time now) {
  auto it = devices_.find(result.camera_id);
  if (it == devices_.end()) {
    if (static_cast<int>(devices_.size()) >= options_.max_cameras) {
      return absl::ResourceExhaustedError(
          absl::StrCat("camera '", result.camera_id, "' would be camera ", devices_.size() + 1,
                       " of this node; --max_cameras is ", options_.max_cameras));
    }
    Device device;
    device.alias_offset = kDeviceAliasBase * (devices_.size() + 1);
    device.last_values = NullDeviceValues();
    it = devices_.emplace(result.camera_id, std::move(device)).first;
  }
  Device& device = it->second;
  device.last_seen = now;
  std::vector<Outgoing> out;
  if (!device.born) out.push_back(DeviceBirth(result.camera_id, device, now));

  absl::Time captured = now;
  if (!absl::ParseTime(absl::RFC3339_full, result.timestamp, &captured, nullptr)) captured = now;
  Payload payload;
  payload.set_timestamp(EpochMillis(now));
  payload.set_seq(NextSeq());
  device.last_values = DeviceValues(result);
  const auto& specs = DeviceMetrics();
  for (size_t i = 0; i < specs.size(); ++i) {
    Payload::Metric& metric = *payload.add_metrics();
    FillMetric(specs[i], device.last_values[i], /*with_name=*/false, device.alias_offset,
               EpochMillis(captured), metric);
    if (historical) metric.set_is_historical(true);
  }
  out.push_back({Topic("DDATA", result.camera_id), Serialized(payload)});
  return out;
}

std::vector<Outgoing> EdgeNodeSession::Status(const NodeStatus& status, absl::Time now) {
  if (status == status_) return {};
  const std::vector<MetricValue> before = NodeValues(status_);
  const std::vector<MetricValue> after = NodeValues(status);
  Payload payload;
  payload.set_timestamp(EpochMillis(now));
  payload.set_seq(NextSeq());
  const auto& specs = NodeStatusMetrics();
  for (size_t i = 0; i < specs.size(); ++i) {
    if (before[i] != after[i]) {
      FillMetric(specs[i], after[i], false, 0, EpochMillis(now), *payload.add_metrics());
    }
  }
  status_ = status;
  return {{Topic("NDATA"), Serialized(payload)}};
}

std::vector<Outgoing> EdgeNodeSession::ExpireDevices(absl::Time now) {
  std::vector<Outgoing> out;
  for (auto& [id, device] : devices_) {
    if (!device.born || now - device.last_seen < options_.device_timeout) continue;
    Payload payload;
    payload.set_timestamp(EpochMillis(now));
    payload.set_seq(NextSeq());
    device.born = false;
    out.push_back({Topic("DDEATH", id), Serialized(payload)});
  }
  return out;
}

std::vector<std::string> EdgeNodeSession::LiveDevices() const {
  std::vector<std::string> ids;
  for (const auto& [id, device] : devices_) {
    if (device.born) ids.push_back(id);
  }
  return ids;
}

absl::StatusOr<bool> EdgeNodeSession::IsRebirthRequest(absl::string_view ncmd_payload) {
  Payload payload;
  if (!payload.ParseFromArray(ncmd_payload.data(), static_cast<int>(ncmd_payload.size()))) {
    return absl::InvalidArgumentError("NCMD payload is not a Sparkplug B payload");
  }
  for (const Payload::Metric& metric : payload.metrics()) {
    if (metric.name() == kRebirthMetric && metric.value_case() == Payload::Metric::kBooleanValue) {
      return metric.boolean_value();
    }
  }
  return false;
}

}  // namespace matid::sparkplug
