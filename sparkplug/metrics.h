// The metrics matid-sparkplug publishes, with their Sparkplug names,
// aliases and datatypes: the edge node's own (bdSeq, Node Control/Rebirth,
// the model the server runs and its state) and each camera's, a device
// whose metrics are one result. Aliases are unique across the node and all
// its devices (device k's metrics start at kDeviceAliasBase * (k + 1)). Pure
// functions and constants, safe from any thread.
#ifndef MATID_SPARKPLUG_METRICS_H_
#define MATID_SPARKPLUG_METRICS_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/time/time.h"
#include "common/result_message.h"
#include "sparkplug_b/sparkplug_b.pb.h"

namespace matid::sparkplug {

// A metric's value; monostate is null (a device born before its first result).
using MetricValue = std::variant<std::monostate, bool, uint64_t, double, std::string>;

struct MetricSpec {
  const char* name;
  uint64_t alias;  // 0: none (bdSeq)
  sparkplug_b::DataType datatype;
};

inline constexpr char kBdSeqMetric[] = "bdSeq";
inline constexpr char kRebirthMetric[] = "Node Control/Rebirth";
inline constexpr uint64_t kDeviceAliasBase = 100;

// The node's metrics after bdSeq and Node Control/Rebirth, in NodeValues' order.
const std::vector<MetricSpec>& NodeStatusMetrics();
// A camera's metrics, in DeviceValues' order (aliases before the device's base).
const std::vector<MetricSpec>& DeviceMetrics();

// What the node reports of the server: the model it serves, and its state
// ("SERVING", "NOT_SERVING" or "UNREACHABLE").
struct NodeStatus {
  std::string model_name;
  std::string model_version;
  std::string model_sha256;
  std::string server_state = "UNREACHABLE";

  bool operator==(const NodeStatus& other) const {
    return model_name == other.model_name && model_version == other.model_version &&
           model_sha256 == other.model_sha256 && server_state == other.server_state;
  }
};

std::vector<MetricValue> NodeValues(const NodeStatus& status);
// One result as a camera's metric values (part id null without a trigger).
std::vector<MetricValue> DeviceValues(const ResultMessage& result);
// Null for every device metric.
std::vector<MetricValue> NullDeviceValues();

// Sets a metric's datatype, value (or is_null) and, when given, name and
// alias (alias_offset added) and timestamp (ms since the epoch). Integers
// are Int64 or UInt64 in long_value: decoders disagree on where UInt32
// goes (Tahu's read it from long_value, the specification's table says
// int_value). The datatype is sent in DATA messages too, where the
// specification says it should not be: Tahu's decoders need it to read the
// value.
void FillMetric(const MetricSpec& spec, const MetricValue& value, bool with_name,
                uint64_t alias_offset, uint64_t timestamp_ms, sparkplug_b::Payload::Metric& metric);

uint64_t EpochMillis(absl::Time time);

}  // namespace matid::sparkplug

#endif  // MATID_SPARKPLUG_METRICS_H_
