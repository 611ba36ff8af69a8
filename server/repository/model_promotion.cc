// ModelManager: the shadow tap, promotions, rollbacks and rollback windows
// (see model_manager.h); the rules themselves are in promotion_rules.h.
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "server/repository/model_manager.h"

namespace matid {
namespace {

void LogEvent(const EventMessage& event, const std::string& detail) {
  LogInfo("model %s: %s version %d -> %d (%s: %s)%s", event.model, event.type, event.from_version,
          event.to_version, event.trigger, event.reason, detail);
}

EventMessage ModelEvent(const std::string& type, const std::string& model, int64_t from_version,
                        int64_t to_version, const std::string& trigger, const std::string& reason) {
  EventMessage event;
  event.type = type;
  event.model = model;
  event.from_version = from_version;
  event.to_version = to_version;
  event.trigger = trigger;
  event.reason = reason;
  return event;
}

std::map<std::string, double> OutcomeFigures(const OutcomeSnapshot& outcomes,
                                             const RollbackRule& rule) {
  return {
      {"images", static_cast<double>(outcomes.answered + outcomes.failed)},
      {"errors", static_cast<double>(outcomes.failed)},
      {"low_confidence", static_cast<double>(outcomes.AnsweredBelow(rule.low_confidence_below))}};
}

}  // namespace

void ModelManager::Rescan(Caller caller) {
  if (caller == Caller::kOperator) {
    ReloadAndWait();
    return;
  }
  Reconcile();
  ReleaseUnused();
}

absl::Status ModelManager::Promote(const std::string& model) {
  return PromoteShadow(model, "admin", "an operator promoted it", Caller::kOperator);
}

absl::Status ModelManager::Rollback(const std::string& model) {
  return RollBack(model, "admin", "an operator rolled it back", {}, Caller::kOperator);
}

absl::Status ModelManager::PromoteShadow(const std::string& model, const std::string& trigger,
                                         const std::string& reason, Caller caller) {
  int64_t primary = 0;
  int64_t shadow = 0;
  ShadowSnapshot compared;
  VersionPolicy promoted;
  auto scanned = UpdatePolicy(
      model, [&](const RepositoryModel& scanned) -> absl::StatusOr<std::optional<VersionPolicy>> {
        if (!scanned.policy_status.ok()) {
          return absl::FailedPreconditionError(scanned.policy_status.message());
        }
        shadow = scanned.policy.shadow_version;
        if (shadow == 0) {
          return absl::FailedPreconditionError(
              absl::StrCat("model '", model,
                           "' has no shadow version to promote (set one with matid-admin shadow)"));
        }
        std::shared_ptr<const ShadowTap> tap;
        std::string problem;
        {
          std::lock_guard<std::mutex> lock(mu_);
          const auto entry = models_.find(model);
          if (entry != models_.end()) {
            if (entry->second.tap != nullptr && entry->second.shadow_version == shadow) {
              tap = entry->second.tap;
            }
            primary = entry->second.default_version;
            problem = entry->second.shadow_problem;
          }
        }
        if (tap == nullptr || primary == 0) {
          return absl::FailedPreconditionError(
              absl::StrCat("model '", model, "': shadow version ", shadow, " is not running",
                           problem.empty() ? "" : absl::StrCat(" (", problem, ")")));
        }
        compared = tap->comparison().Snapshot();
        promoted.versions = {shadow};
        promoted.rollback = {primary, shadow, clock_.Now() + scanned.policy.rollback_when.window,
                             scanned.policy.rollback_when};
        return promoted;
      });
  if (!scanned.ok()) return scanned.status();
  Rescan(caller);
  if (DefaultVersion(model) != shadow) {
    return absl::InternalError(absl::StrCat("model '", model, "': version ", shadow,
                                            " was promoted but does not serve; see the log"));
  }
  EventMessage event = ModelEvent("promotion", model, primary, shadow, trigger, reason);
  event.figures = {{"compared", static_cast<double>(compared.compared)},
                   {"agreement", compared.agreement()},
                   {"shadow_p99_ms", absl::ToDoubleMilliseconds(compared.latency_p99)},
                   {"window_seconds", absl::ToDoubleSeconds(promoted.rollback.rule.window)}};
  LogEvent(event, absl::StrCat("; version ", primary, " stays loaded for a rollback until ",
                               absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", promoted.rollback.until,
                                                absl::UTCTimeZone())));
  monitor_.Event(std::move(event));
  return absl::OkStatus();
}

absl::Status ModelManager::RollBack(const std::string& model, const std::string& trigger,
                                    const std::string& reason,
                                    std::map<std::string, double> figures, Caller caller) {
  RollbackWindow window;
  auto scanned = UpdatePolicy(
      model, [&](const RepositoryModel& scanned) -> absl::StatusOr<std::optional<VersionPolicy>> {
        window = scanned.policy.rollback;
        if (!scanned.policy_status.ok() || window.version == 0) {
          return absl::FailedPreconditionError(absl::StrCat(
              "model '", model, "' has no open rollback window (a promotion opens one)"));
        }
        VersionPolicy back;
        back.versions = {window.version};
        return back;
      });
  if (!scanned.ok()) return scanned.status();
  Rescan(caller);
  if (DefaultVersion(model) != window.version) {
    return absl::InternalError(absl::StrCat("model '", model, "': rolled back to version ",
                                            window.version, " but it does not serve; see the log"));
  }
  EventMessage event =
      ModelEvent("rollback", model, window.promoted_version, window.version, trigger, reason);
  event.figures = std::move(figures);
  LogEvent(event, "");
  monitor_.Event(std::move(event));
  return absl::OkStatus();
}

void ModelManager::CloseWindow(const std::string& model, const RollbackWindow& window) {
  bool closed = false;
  auto scanned =
      UpdatePolicy(model, [&](const RepositoryModel& scanned) -> std::optional<VersionPolicy> {
        VersionPolicy policy = scanned.policy;
        if (!scanned.policy_status.ok() || policy.rollback.version != window.version ||
            policy.rollback.until != window.until) {
          return std::nullopt;  // changed meanwhile: not this window any more
        }
        policy.rollback = RollbackWindow();
        closed = true;
        return policy;
      });
  if (!scanned.ok() || !closed) return;
  OutcomeSnapshot outcomes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto entry = models_.find(model);
    if (entry != models_.end()) {
      const auto promoted = entry->second.versions.find(window.promoted_version);
      if (promoted != entry->second.versions.end() && promoted->second.model != nullptr) {
        outcomes = promoted->second.model->outcomes().Since(entry->second.rollback_baseline);
      }
    }
  }
  Rescan(Caller::kManagerThread);
  EventMessage event = ModelEvent(
      "rollback_window_closed", model, window.version, window.promoted_version, "policy",
      absl::StrFormat("no rollback within %s", absl::FormatDuration(window.rule.window)));
  event.figures = OutcomeFigures(outcomes, window.rule);
  LogEvent(event, absl::StrCat("; version ", window.version, " unloaded"));
  monitor_.Event(std::move(event));
}

bool ModelManager::WatchingLocked() const {
  for (const auto& [name, entry] : models_) {
    if (entry.rollback.version != 0 || (entry.promote_when.has_value() && entry.tap != nullptr)) {
      return true;
    }
  }
  return false;
}

void ModelManager::CheckRules() {
  struct Watch {
    std::string model;
    RollbackWindow window;
    std::shared_ptr<const ServingModel> promoted;  // while it is the default
    OutcomeSnapshot baseline;
    std::optional<PromotionRule> promote_when;
    std::shared_ptr<const ShadowTap> tap;
  };
  std::vector<Watch> watches;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, entry] : models_) {
      Watch watch{name,     entry.rollback, nullptr, entry.rollback_baseline, entry.promote_when,
                  entry.tap};
      const auto promoted = entry.versions.find(entry.rollback.promoted_version);
      if (entry.rollback.version != 0 && entry.default_version == entry.rollback.promoted_version &&
          promoted != entry.versions.end()) {
        watch.promoted = promoted->second.model;
      }
      watches.push_back(std::move(watch));
    }
  }
  for (const Watch& watch : watches) {
    absl::Status acted = absl::OkStatus();
    if (watch.window.version != 0 && clock_.Now() >= watch.window.until) {
      CloseWindow(watch.model, watch.window);
    } else if (watch.promoted != nullptr) {
      const OutcomeSnapshot outcomes = watch.promoted->outcomes().Since(watch.baseline);
      if (std::optional<std::string> why = RollbackDue(watch.window.rule, outcomes)) {
        acted = RollBack(watch.model, "policy", *why, OutcomeFigures(outcomes, watch.window.rule),
                         Caller::kManagerThread);
      }
    }
    if (watch.promote_when.has_value() && watch.tap != nullptr && watch.window.version == 0) {
      if (std::optional<std::string> why =
              PromotionDue(*watch.promote_when, watch.tap->comparison().Snapshot())) {
        acted = PromoteShadow(watch.model, "policy", *why, Caller::kManagerThread);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    const auto entry = models_.find(watch.model);
    if (entry == models_.end()) continue;
    const std::string problem = acted.ok() ? "" : std::string(acted.message());
    if (!problem.empty() && problem != entry->second.rule_problem) {
      LogWarning("model %s: %s", watch.model, problem);
    }
    entry->second.rule_problem = problem;
  }
}

void ModelManager::UpdateShadow(const std::string& model, int64_t shadow_version, double fraction,
                                std::string problem) {
  std::shared_ptr<ServingModel> primary;
  std::shared_ptr<ServingModel> shadow;
  std::shared_ptr<ServingModel> old_primary;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& entry = EntryLocked(model);
    const auto model_of = [&entry](int64_t version) -> std::shared_ptr<ServingModel> {
      const auto slot = entry.versions.find(version);
      return slot == entry.versions.end() ? nullptr : slot->second.model;
    };
    primary = model_of(entry.default_version);
    shadow = model_of(shadow_version);
    if (primary == nullptr || shadow == nullptr) shadow_version = 0;
    if (shadow_version == 0) shadow.reset();
    entry.shadow_problem = problem;
    if (entry.tap_primary.lock() == primary && entry.tap_shadow.lock() == shadow &&
        entry.shadow_version == shadow_version && entry.shadow_fraction == fraction) {
      return;  // as it is
    }
    old_primary = entry.tap_primary.lock();
  }
  if (old_primary != nullptr && old_primary != primary) old_primary->SetShadow(nullptr);
  std::shared_ptr<const ShadowTap> tap;
  if (shadow != nullptr) {
    auto comparison =
        std::make_shared<ShadowComparison>(static_cast<int>(primary->info().labels.size()));
    ShadowCounters counters = metrics_ != nullptr ? metrics_->ShadowCountersFor(
                                                        primary->info(), shadow->identity().version)
                                                  : ShadowCounters();
    BatcherOptions batcher = options_.serving.batcher;
    batcher.idle_priority = options_.shadow_idle_priority;
    auto created =
        ShadowTap::Create(primary->info(), primary->identity().version, shadow, fraction, batcher,
                          std::move(comparison), std::move(counters), disagreements_);
    if (created.ok()) {
      tap = *std::move(created);
      LogInfo("%s", absl::StrCat("model ", model, ": version ", shadow_version, " shadows version ",
                                 primary->identity().version, " on ", fraction, " of its images"));
    } else {
      problem = absl::StrCat("shadow version ", shadow_version,
                             " cannot shadow: ", created.status().message());
      LogWarning("%s", absl::StrCat("model ", model, ": ", problem));
    }
  } else if (!problem.empty()) {
    LogWarning("%s", absl::StrCat("model ", model, ": ", problem));
  }
  if (primary != nullptr) primary->SetShadow(tap);
  std::lock_guard<std::mutex> lock(mu_);
  Entry& entry = EntryLocked(model);
  entry.tap = std::move(tap);
  entry.tap_primary = primary;
  entry.tap_shadow = shadow;
  entry.shadow_version = shadow_version;
  entry.shadow_fraction = fraction;
  entry.shadow_problem = problem;
}

}  // namespace matid
