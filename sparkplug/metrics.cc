#include "sparkplug/metrics.h"

#include <type_traits>

namespace matid::sparkplug {

using sparkplug_b::DataType;

const std::vector<MetricSpec>& NodeStatusMetrics() {
  static const std::vector<MetricSpec> specs = {
      {"Model/Name", 2, DataType::String},
      {"Model/Version", 3, DataType::String},
      {"Model/SHA256", 4, DataType::String},
      {"Server/State", 5, DataType::String},
  };
  return specs;
}

const std::vector<MetricSpec>& DeviceMetrics() {
  static const std::vector<MetricSpec> specs = {
      {"Result/Class", 0, DataType::String},
      {"Result/Score", 1, DataType::Double},
      {"Result/Needs Inspection", 2, DataType::Boolean},
      {"Result/Latency ms", 3, DataType::Double},
      {"Result/Part ID", 4, DataType::UInt64},
      {"Result/Frame Seq", 5, DataType::UInt64},
      {"Result/Message ID", 6, DataType::String},
      {"Model/Version", 7, DataType::String},
  };
  return specs;
}

std::vector<MetricValue> NodeValues(const NodeStatus& status) {
  return {status.model_name, status.model_version, status.model_sha256, status.server_state};
}

std::vector<MetricValue> DeviceValues(const ResultMessage& result) {
  MetricValue part_id;
  if (result.trigger) part_id = static_cast<uint64_t>(result.trigger->part_id);
  return {result.top_label,
          result.top_score,
          result.needs_inspection,
          result.latency_ms,
          part_id,
          static_cast<uint64_t>(result.frame_seq),
          result.message_id,
          result.model_version};
}

std::vector<MetricValue> NullDeviceValues() {
  return std::vector<MetricValue>(DeviceMetrics().size());
}

void FillMetric(const MetricSpec& spec, const MetricValue& value, bool with_name,
                uint64_t alias_offset, uint64_t timestamp_ms,
                sparkplug_b::Payload::Metric& metric) {
  if (with_name) metric.set_name(spec.name);
  if (spec.alias != 0 || alias_offset != 0) metric.set_alias(spec.alias + alias_offset);
  if (timestamp_ms != 0) metric.set_timestamp(timestamp_ms);
  metric.set_datatype(spec.datatype);
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          metric.set_is_null(true);
        } else if constexpr (std::is_same_v<T, bool>) {
          metric.set_boolean_value(v);
        } else if constexpr (std::is_same_v<T, double>) {
          metric.set_double_value(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          metric.set_string_value(v);
        } else {
          metric.set_long_value(v);  // Int64, UInt64
        }
      },
      value);
}

uint64_t EpochMillis(absl::Time time) { return static_cast<uint64_t>(absl::ToUnixMillis(time)); }

}  // namespace matid::sparkplug
