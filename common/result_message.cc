#include "common/result_message.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace matid {

std::string MessageId(absl::string_view camera_id, absl::string_view boot_id, uint64_t frame_seq) {
  return absl::StrCat(camera_id, "-", boot_id, "-", frame_seq);
}

std::string Rfc3339Millis(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

std::string ToJson(const ResultMessage& m) {
  nlohmann::json predictions = nlohmann::json::array();
  for (const auto& p : m.predictions)
    predictions.push_back({{"label", p.label}, {"score", p.score}});
  const nlohmann::json json = {
      {"message_id", m.message_id},
      {"timestamp", m.timestamp},
      {"camera_id", m.camera_id},
      {"frame_seq", m.frame_seq},
      {"model",
       {{"name", m.model_name},
        {"version", m.model_version},
        {"variant", m.model_variant},
        {"sha256", m.model_sha256}}},
      {"predictions", predictions},
      {"top_label", m.top_label},
      {"top_score", m.top_score},
      {"needs_inspection", m.needs_inspection},
      {"latency_ms", m.latency_ms},
  };
  return json.dump();
}

namespace {

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("result message: ", what));
}

}  // namespace

absl::StatusOr<ResultMessage> ParseResultMessage(absl::string_view text) {
  const nlohmann::json json =
      nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Invalid("not valid JSON");
  if (!json.is_object()) return Invalid("not a JSON object");
  auto string_field = [&](const char* name, std::string* out) -> absl::Status {
    auto it = json.find(name);
    if (it == json.end() || !it->is_string())
      return Invalid(absl::StrCat(name, " must be a string"));
    *out = it->get<std::string>();
    return absl::OkStatus();
  };
  auto number_field = [&](const char* name, double* out) -> absl::Status {
    auto it = json.find(name);
    if (it == json.end() || !it->is_number())
      return Invalid(absl::StrCat(name, " must be a number"));
    *out = it->get<double>();
    return absl::OkStatus();
  };
  ResultMessage m;
  for (auto [name, out] : {std::pair{"message_id", &m.message_id},
                           {"timestamp", &m.timestamp},
                           {"camera_id", &m.camera_id},
                           {"top_label", &m.top_label}}) {
    absl::Status status = string_field(name, out);
    if (!status.ok()) return status;
  }
  if (m.message_id.empty()) return Invalid("message_id is empty");
  if (m.camera_id.empty()) return Invalid("camera_id is empty");
  auto seq = json.find("frame_seq");
  if (seq == json.end() || !seq->is_number_unsigned()) {
    return Invalid("frame_seq must be a non-negative integer");
  }
  m.frame_seq = seq->get<uint64_t>();
  auto model = json.find("model");
  if (model == json.end() || !model->is_object() || !model->contains("name") ||
      !(*model)["name"].is_string()) {
    return Invalid("model must be an object with a string name");
  }
  m.model_name = (*model)["name"].get<std::string>();
  for (auto [name, out] : {std::pair{"version", &m.model_version},
                           {"variant", &m.model_variant},
                           {"sha256", &m.model_sha256}}) {
    if (model->contains(name) && (*model)[name].is_string())
      *out = (*model)[name].get<std::string>();
  }
  auto predictions = json.find("predictions");
  if (predictions == json.end() || !predictions->is_array()) {
    return Invalid("predictions must be an array");
  }
  for (const auto& p : *predictions) {
    if (!p.is_object() || !p.contains("label") || !p["label"].is_string() || !p.contains("score") ||
        !p["score"].is_number()) {
      return Invalid("each prediction needs a string label and a numeric score");
    }
    const double score = p["score"].get<double>();
    if (!(score >= 0 && score <= 1)) return Invalid("each prediction score must be in [0, 1]");
    m.predictions.push_back({p["label"].get<std::string>(), score});
  }
  for (auto [name, out] : {std::pair{"top_score", &m.top_score}, {"latency_ms", &m.latency_ms}}) {
    absl::Status status = number_field(name, out);
    if (!status.ok()) return status;
  }
  if (!(m.top_score >= 0 && m.top_score <= 1)) return Invalid("top_score must be in [0, 1]");
  if (!(m.latency_ms >= 0 && std::isfinite(m.latency_ms))) {
    return Invalid("latency_ms must be a finite number >= 0");
  }
  auto inspection = json.find("needs_inspection");
  if (inspection == json.end() || !inspection->is_boolean()) {
    return Invalid("needs_inspection must be true or false");
  }
  m.needs_inspection = inspection->get<bool>();
  return m;
}

}  // namespace matid
