#include "common/event_message.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/result_message.h"

namespace matid {
namespace {

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("event message: ", what));
}

bool KnownType(const std::string& type) {
  return type == "promotion" || type == "rollback" || type == "rollback_window_closed";
}

}  // namespace

void StampEvent(absl::Time time, EventMessage& event) {
  event.timestamp = Rfc3339Millis(time);
  event.message_id =
      absl::StrCat(event.box_id, "-", event.model, "-", event.type, "-", absl::ToUnixMillis(time));
}

std::string ToJson(const EventMessage& e) {
  nlohmann::json figures = nlohmann::json::object();
  for (const auto& [name, value] : e.figures) figures[name] = value;
  const nlohmann::json json = {
      {"message_id", e.message_id}, {"box_id", e.box_id},
      {"timestamp", e.timestamp},   {"type", e.type},
      {"model", e.model},           {"from_version", e.from_version},
      {"to_version", e.to_version}, {"trigger", e.trigger},
      {"reason", e.reason},         {"figures", figures},
  };
  return json.dump();
}

absl::StatusOr<EventMessage> ParseEventMessage(absl::string_view text) {
  const nlohmann::json json =
      nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Invalid("not valid JSON");
  if (!json.is_object()) return Invalid("not a JSON object");
  EventMessage e;
  for (auto [name, out] : {std::pair{"message_id", &e.message_id},
                           {"box_id", &e.box_id},
                           {"timestamp", &e.timestamp},
                           {"type", &e.type},
                           {"model", &e.model},
                           {"trigger", &e.trigger},
                           {"reason", &e.reason}}) {
    auto it = json.find(name);
    if (it == json.end() || !it->is_string())
      return Invalid(absl::StrCat(name, " must be a string"));
    *out = it->get<std::string>();
  }
  for (auto [name, value] :
       {std::pair{"message_id", &e.message_id}, {"box_id", &e.box_id}, {"model", &e.model}}) {
    if (value->empty()) return Invalid(absl::StrCat(name, " is empty"));
  }
  if (!KnownType(e.type)) {
    return Invalid(absl::StrCat("type is \"", e.type,
                                "\"; expected promotion, rollback or rollback_window_closed"));
  }
  if (e.trigger != "policy" && e.trigger != "admin") {
    return Invalid(absl::StrCat("trigger is \"", e.trigger, "\"; expected policy or admin"));
  }
  for (auto [name, out] :
       {std::pair{"from_version", &e.from_version}, {"to_version", &e.to_version}}) {
    auto it = json.find(name);
    if (it == json.end() || !it->is_number_integer() || it->get<int64_t>() <= 0) {
      return Invalid(absl::StrCat(name, " must be a positive integer"));
    }
    *out = it->get<int64_t>();
  }
  auto figures = json.find("figures");
  if (figures == json.end() || !figures->is_object()) return Invalid("figures must be an object");
  for (const auto& [name, value] : figures->items()) {
    if (!value.is_number() || !std::isfinite(value.get<double>())) {
      return Invalid(absl::StrCat("figure ", name, " must be a finite number"));
    }
    e.figures[name] = value.get<double>();
  }
  return e;
}

}  // namespace matid
