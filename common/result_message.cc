#include "common/result_message.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace matid {

std::string NewBootId() {
  std::random_device random;
  return absl::StrFormat("%08x", random());
}

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
  nlohmann::json json = {
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
  if (m.trigger) {
    json["trigger"] = {
        {"part_id", m.trigger->part_id}, {"seq", m.trigger->seq}, {"recipe", m.trigger->recipe}};
  }
  return json.dump();
}

namespace {

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("result message: ", what));
}

absl::Status ReadString(const nlohmann::json& json, const char* name, std::string* out) {
  const auto it = json.find(name);
  if (it == json.end() || !it->is_string()) return Invalid(absl::StrCat(name, " must be a string"));
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadNumber(const nlohmann::json& json, const char* name, double* out) {
  const auto it = json.find(name);
  if (it == json.end() || !it->is_number()) return Invalid(absl::StrCat(name, " must be a number"));
  *out = it->get<double>();
  return absl::OkStatus();
}

// "model": {"name": ..., and optionally "version", "variant", "sha256"}.
absl::Status ReadModel(const nlohmann::json& json, ResultMessage* m) {
  const auto model = json.find("model");
  if (model == json.end() || !model->is_object() ||
      !ReadString(*model, "name", &m->model_name).ok()) {
    return Invalid("model must be an object with a string name");
  }
  for (auto [name, out] : {std::pair{"version", &m->model_version},
                           {"variant", &m->model_variant},
                           {"sha256", &m->model_sha256}}) {
    const auto field = model->find(name);
    if (field != model->end() && field->is_string()) *out = field->get<std::string>();
  }
  return absl::OkStatus();
}

absl::Status ReadPredictions(const nlohmann::json& json, ResultMessage* m) {
  const auto predictions = json.find("predictions");
  if (predictions == json.end() || !predictions->is_array()) {
    return Invalid("predictions must be an array");
  }
  for (const auto& p : *predictions) {
    std::string label;
    double score = 0;
    if (!p.is_object() || !ReadString(p, "label", &label).ok() ||
        !ReadNumber(p, "score", &score).ok()) {
      return Invalid("each prediction needs a string label and a numeric score");
    }
    if (!(score >= 0 && score <= 1)) return Invalid("each prediction score must be in [0, 1]");
    m->predictions.push_back({std::move(label), score});
  }
  return absl::OkStatus();
}

// The optional "trigger" object of a result a PLC asked for.
absl::StatusOr<ResultMessage> ReadTrigger(const nlohmann::json& json, ResultMessage* m) {
  const auto trigger = json.find("trigger");
  if (trigger == json.end()) return std::move(*m);
  const auto field = [&](const char* name, uint64_t max) -> std::optional<uint64_t> {
    const auto it = trigger->find(name);
    if (it == trigger->end() || !it->is_number_unsigned() || it->get<uint64_t>() > max) {
      return std::nullopt;
    }
    return it->get<uint64_t>();
  };
  if (!trigger->is_object()) return Invalid("trigger must be an object");
  const auto part_id = field("part_id", 0xFFFFFFFFu);
  const auto seq = field("seq", 0xFFFF);
  const auto recipe = field("recipe", 0xFFFF);
  if (!part_id || !seq || !recipe) {
    return Invalid("trigger needs part_id (uint32), seq and recipe (uint16)");
  }
  m->trigger = ResultMessage::Trigger{static_cast<uint32_t>(*part_id), static_cast<uint16_t>(*seq),
                                      static_cast<uint16_t>(*recipe)};
  return std::move(*m);
}

}  // namespace

absl::StatusOr<ResultMessage> ParseResultMessage(absl::string_view text) {
  const nlohmann::json json =
      nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Invalid("not valid JSON");
  if (!json.is_object()) return Invalid("not a JSON object");
  ResultMessage m;
  for (auto [name, out] : {std::pair{"message_id", &m.message_id},
                           {"timestamp", &m.timestamp},
                           {"camera_id", &m.camera_id},
                           {"top_label", &m.top_label}}) {
    if (absl::Status status = ReadString(json, name, out); !status.ok()) return status;
  }
  if (m.message_id.empty()) return Invalid("message_id is empty");
  if (m.camera_id.empty()) return Invalid("camera_id is empty");
  const auto seq = json.find("frame_seq");
  if (seq == json.end() || !seq->is_number_unsigned()) {
    return Invalid("frame_seq must be a non-negative integer");
  }
  m.frame_seq = seq->get<uint64_t>();
  if (absl::Status model = ReadModel(json, &m); !model.ok()) return model;
  if (absl::Status predictions = ReadPredictions(json, &m); !predictions.ok()) return predictions;
  for (auto [name, out] : {std::pair{"top_score", &m.top_score}, {"latency_ms", &m.latency_ms}}) {
    if (absl::Status status = ReadNumber(json, name, out); !status.ok()) return status;
  }
  if (!(m.top_score >= 0 && m.top_score <= 1)) return Invalid("top_score must be in [0, 1]");
  if (!(m.latency_ms >= 0 && std::isfinite(m.latency_ms))) {
    return Invalid("latency_ms must be a finite number >= 0");
  }
  const auto inspection = json.find("needs_inspection");
  if (inspection == json.end() || !inspection->is_boolean()) {
    return Invalid("needs_inspection must be true or false");
  }
  m.needs_inspection = inspection->get<bool>();
  return ReadTrigger(json, &m);
}

}  // namespace matid
