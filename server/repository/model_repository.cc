#include "server/repository/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_contents.h"
#include "google/protobuf/util/json_util.h"
#include "matid/v1/model_metadata.pb.h"
#include "server/shadow/promotion_rules_proto.h"

namespace matid {
namespace {

namespace fs = std::filesystem;

// "12" -> 12; "012", "0", "-3", "3a", ".publishing-x" -> not a version.
bool ParseVersion(const std::string& name, int64_t* version) {
  if (name.empty() || name[0] == '0') return false;
  for (char c : name) {
    if (c < '0' || c > '9') return false;
  }
  return absl::SimpleAtoi(name, version) && *version > 0;
}

bool IsDirectory(const fs::path& path) {
  std::error_code error;
  return fs::is_directory(path, error);
}

RepositoryModel ScanModel(const fs::path& folder) {
  RepositoryModel model;
  model.name = folder.filename().string();
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder, error)) {
    int64_t version = 0;
    if (ParseVersion(entry.path().filename().string(), &version) && IsDirectory(entry.path())) {
      model.versions.push_back(version);
    }
  }
  std::sort(model.versions.begin(), model.versions.end());
  const std::string policy_path = (folder / kVersionPolicyFile).string();
  if (fs::exists(policy_path, error)) {
    absl::StatusOr<std::string> text = ReadFileContents(policy_path);
    absl::StatusOr<VersionPolicy> policy =
        text.ok() ? ParseVersionPolicy(*text) : absl::StatusOr<VersionPolicy>(text.status());
    if (policy.ok()) {
      model.policy = *std::move(policy);
    } else {
      model.policy_status = absl::Status(
          policy.status().code(), absl::StrCat(policy_path, ": ", policy.status().message()));
    }
  }
  return model;
}

std::string RollbackRuleJson(const RollbackRule& rule) {
  return absl::StrCat("{\"window_seconds\": ", absl::ToDoubleSeconds(rule.window),
                      ", \"max_error_rate\": ", rule.max_error_rate,
                      ", \"low_confidence_below\": ", rule.low_confidence_below,
                      ", \"max_low_confidence_ratio\": ", rule.max_low_confidence_ratio,
                      ", \"min_images\": ", rule.min_images, "}");
}

absl::Status ParseShadowRules(const v1::ShadowPolicy& shadow, VersionPolicy& policy) {
  if (shadow.has_promote_when()) {
    const PromotionRule rule = FromProto(shadow.promote_when());
    if (absl::Status valid = ValidatePromotionRule(rule); !valid.ok()) return valid;
    policy.promote_when = rule;
  }
  policy.rollback_when = FromProto(shadow.rollback_when());
  return ValidateRollbackRule(policy.rollback_when);
}

absl::Status ParseRollbackWindow(const v1::RollbackWindow& parsed, RollbackWindow& window) {
  if (parsed.version() <= 0 || parsed.promoted_version() <= 0 ||
      parsed.version() == parsed.promoted_version()) {
    return absl::InvalidArgumentError(
        "\"rollback\" needs two different positive versions: \"version\" (to go back to) and "
        "\"promoted_version\"");
  }
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, parsed.until(), &window.until, &error)) {
    return absl::InvalidArgumentError(absl::StrCat("rollback \"until\" is \"", parsed.until(),
                                                   "\": not an RFC 3339 time (", error, ")"));
  }
  window.version = parsed.version();
  window.promoted_version = parsed.promoted_version();
  window.rule = FromProto(parsed.rule());
  return ValidateRollbackRule(window.rule);
}

}  // namespace

absl::StatusOr<VersionPolicy> ParseVersionPolicy(absl::string_view json) {
  v1::VersionPolicy parsed;
  auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &parsed);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("not a version policy: ", status.ToString()));
  }
  VersionPolicy policy;
  if (parsed.has_shadow() && parsed.shadow().version() != 0) {
    const v1::ShadowPolicy& shadow = parsed.shadow();
    if (shadow.version() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shadow version ", shadow.version(), ": versions are positive integers"));
    }
    if (!(shadow.fraction() > 0 && shadow.fraction() <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat("shadow fraction ", shadow.fraction(),
                                                     " must be in (0, 1]: the share of images the "
                                                     "shadow version classifies"));
    }
    policy.shadow_version = shadow.version();
    policy.shadow_fraction = shadow.fraction();
    if (absl::Status rules = ParseShadowRules(shadow, policy); !rules.ok()) return rules;
  }
  if (parsed.has_rollback()) {
    absl::Status window = ParseRollbackWindow(parsed.rollback(), policy.rollback);
    if (!window.ok()) return window;
  }
  if (parsed.policy().empty() || parsed.policy() == "latest") {
    if (parsed.versions_size() > 0) {
      return absl::InvalidArgumentError(
          "\"versions\" needs \"policy\": \"specific\" (\"latest\" serves the highest version)");
    }
    return policy;
  }
  if (parsed.policy() != "specific") {
    return absl::InvalidArgumentError(absl::StrCat("\"policy\" is \"", parsed.policy(),
                                                   "\"; expected \"latest\" or \"specific\""));
  }
  if (parsed.versions_size() == 0) {
    return absl::InvalidArgumentError("\"policy\": \"specific\" needs a non-empty \"versions\"");
  }
  for (int64_t version : parsed.versions()) {
    if (version <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("version ", version, " in \"versions\": versions are positive integers"));
    }
    policy.versions.push_back(version);
  }
  std::sort(policy.versions.begin(), policy.versions.end());
  policy.versions.erase(std::unique(policy.versions.begin(), policy.versions.end()),
                        policy.versions.end());
  return policy;
}

std::string VersionPolicyJson(const VersionPolicy& policy) {
  std::string text = policy.latest() ? std::string("{\"policy\": \"latest\"")
                                     : absl::StrCat("{\"policy\": \"specific\", \"versions\": [",
                                                    absl::StrJoin(policy.versions, ", "), "]");
  if (policy.shadow_version != 0) {
    absl::StrAppend(&text, ", \"shadow\": {\"version\": ", policy.shadow_version,
                    ", \"fraction\": ", policy.shadow_fraction);
    if (policy.promote_when.has_value()) {
      const PromotionRule& rule = *policy.promote_when;
      absl::StrAppend(&text, ", \"promote_when\": {\"min_compared\": ", rule.min_compared,
                      ", \"min_agreement\": ", rule.min_agreement,
                      ", \"max_shadow_p99_ms\": ", absl::ToDoubleMilliseconds(rule.max_shadow_p99),
                      "}");
    }
    if (!(policy.rollback_when == RollbackRule())) {
      absl::StrAppend(&text, ", \"rollback_when\": ", RollbackRuleJson(policy.rollback_when));
    }
    absl::StrAppend(&text, "}");
  }
  if (policy.rollback.version != 0) {
    absl::StrAppend(
        &text, ", \"rollback\": {\"version\": ", policy.rollback.version,
        ", \"promoted_version\": ", policy.rollback.promoted_version, ", \"until\": \"",
        absl::FormatTime("%Y-%m-%d%ET%H:%M:%E3SZ", policy.rollback.until, absl::UTCTimeZone()),
        "\", \"rule\": ", RollbackRuleJson(policy.rollback.rule), "}");
  }
  return text + "}\n";
}

absl::StatusOr<std::vector<RepositoryModel>> ScanModelRepository(const std::string& root) {
  std::error_code error;
  fs::directory_iterator entries(root, error);
  if (error) {
    return absl::NotFoundError(
        absl::StrCat("model repository ", root, " is not a readable folder: ", error.message()));
  }
  std::vector<RepositoryModel> models;
  for (const fs::directory_entry& entry : entries) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || !IsDirectory(entry.path())) continue;
    models.push_back(ScanModel(entry.path()));
  }
  std::sort(models.begin(), models.end(),
            [](const RepositoryModel& a, const RepositoryModel& b) { return a.name < b.name; });
  return models;
}

std::string VersionDir(const std::string& root, absl::string_view model, int64_t version) {
  return absl::StrCat(root, "/", model, "/", version);
}

std::string VersionDirStamp(const std::string& version_dir) {
  std::vector<std::string> lines;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(version_dir, error)) {
    std::error_code ignored;
    const auto size = entry.is_regular_file(ignored) ? entry.file_size(ignored) : 0;
    const auto modified = entry.last_write_time(ignored).time_since_epoch().count();
    lines.push_back(absl::StrCat(entry.path().filename().string(), " ", size, " ", modified));
  }
  std::sort(lines.begin(), lines.end());
  std::string stamp;
  for (const std::string& line : lines) absl::StrAppend(&stamp, line, "\n");
  return stamp;
}

}  // namespace matid
