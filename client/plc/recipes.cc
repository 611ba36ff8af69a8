#include "client/plc/recipes.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace matid::plc {
namespace {

absl::Status RecipeError(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("--recipes: ", what));
}

absl::StatusOr<Recipe> ParseRecipe(const nlohmann::json& entry) {
  if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_integer()) {
    return RecipeError("every recipe needs an integer \"id\"");
  }
  const int64_t id = entry["id"].get<int64_t>();
  if (id < 1 || id > 65535) {
    return RecipeError(absl::StrCat("recipe id ", id, " is outside 1..65535 (0 is the default)"));
  }
  Recipe recipe;
  recipe.id = static_cast<uint16_t>(id);
  if (entry.contains("name") && entry["name"].is_string()) recipe.name = entry["name"];
  if (!entry.contains("accepted") || !entry["accepted"].is_array()) {
    return RecipeError(absl::StrCat("recipe ", id, " needs an \"accepted\" list of class labels"));
  }
  for (const auto& label : entry["accepted"]) {
    if (!label.is_string()) return RecipeError(absl::StrCat("recipe ", id, ": labels are strings"));
    recipe.accepted.insert(label.get<std::string>());
  }
  if (recipe.accepted.empty()) {
    return RecipeError(absl::StrCat("recipe ", id, " accepts no class"));
  }
  return recipe;
}

}  // namespace

absl::StatusOr<Recipes> Recipes::Create(const std::vector<std::string>& default_accepted,
                                        absl::string_view json) {
  Recipes recipes;
  if (!default_accepted.empty()) {
    Recipe fallback{0, "default", {default_accepted.begin(), default_accepted.end()}};
    recipes.recipes_.emplace(0, std::move(fallback));
  }
  if (json.empty()) {
    if (recipes.recipes_.empty()) {
      return absl::InvalidArgumentError(
          "no recipe: give --accepted_classes (recipe 0) or a --recipes file");
    }
    return recipes;
  }
  const nlohmann::json document = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object() || !document.contains("recipes") ||
      !document["recipes"].is_array()) {
    return RecipeError("expected a JSON object with a \"recipes\" list");
  }
  for (const auto& entry : document["recipes"]) {
    absl::StatusOr<Recipe> recipe = ParseRecipe(entry);
    if (!recipe.ok()) return recipe.status();
    const uint16_t id = recipe->id;
    if (!recipes.recipes_.emplace(id, *std::move(recipe)).second) {
      return RecipeError(absl::StrCat("recipe id ", id, " appears twice"));
    }
  }
  return recipes;
}

const Recipe* Recipes::Find(uint16_t id) const {
  const auto found = recipes_.find(id);
  return found == recipes_.end() ? nullptr : &found->second;
}

Outcome DecideOutcome(const v1::ClassifyResponse& response, const Recipe& recipe,
                      double inspection_threshold) {
  if (response.predictions().empty()) return ErrorOutcome(absl::InternalError("no prediction"));
  Outcome outcome;
  uint32_t version = 0;
  if (absl::SimpleAtoi(response.model().version(), &version) && version <= 0xFFFF) {
    outcome.model_version = static_cast<uint16_t>(version);
  }
  const v1::Prediction& top = response.predictions(0);
  outcome.class_index = top.index() < kNoClass ? static_cast<uint16_t>(top.index()) : kNoClass;
  const double score = std::clamp(static_cast<double>(top.score()), 0.0, 1.0);
  outcome.score_x1000 = static_cast<uint16_t>(std::lround(score * 1000));
  outcome.needs_inspection = score < inspection_threshold;
  const bool accepted = recipe.accepted.count(top.label()) > 0;
  outcome.state = accepted && !outcome.needs_inspection ? ResultState::kOk : ResultState::kNg;
  return outcome;
}

Outcome ErrorOutcome(const absl::Status& status) {
  Outcome outcome;
  outcome.state = ResultState::kError;
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      outcome.error = ErrorCode::kServerUnavailable;
      break;
    case absl::StatusCode::kDeadlineExceeded:
      outcome.error = ErrorCode::kTimeout;
      break;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kResourceExhausted:
      outcome.error = ErrorCode::kRefused;
      break;
    case absl::StatusCode::kFailedPrecondition:
      outcome.error = ErrorCode::kCaptureFailed;
      break;
    case absl::StatusCode::kNotFound:
      outcome.error = ErrorCode::kUnknownRecipe;
      break;
    default:
      outcome.error = ErrorCode::kInternal;
  }
  return outcome;
}

}  // namespace matid::plc
