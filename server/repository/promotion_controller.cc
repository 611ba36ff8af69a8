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
          const auto control = controls_.find(model);
          if (control != controls_.end()) {
            if (control->second.tap != nullptr && control->second.shadow_version == shadow) {
              tap = control->second.tap;
            }
            problem = control->second.shadow_problem;
          }
          primary = table_.DefaultVersion(model);
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
    const auto control = controls_.find(model);
    const std::shared_ptr<ServingModel> promoted = table_.Version(model, window.promoted_version);
    if (control != controls_.end() && promoted != nullptr) {
      outcomes = promoted->outcomes().Since(control->second.rollback_baseline);
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
  for (const auto& [name, control] : controls_) {
    if (control.rollback.version != 0 ||
        (control.promote_when.has_value() && control.tap != nullptr)) {
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
    for (const auto& [name, control] : controls_) {
      Watch watch{
          name,       control.rollback, nullptr, control.rollback_baseline, control.promote_when,
          control.tap};
      if (control.rollback.version != 0 &&
          table_.DefaultVersion(name) == control.rollback.promoted_version) {
        watch.promoted = table_.Version(name, control.rollback.promoted_version);
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
    const auto control = controls_.find(watch.model);
    if (control == controls_.end()) continue;
    const std::string problem = acted.ok() ? "" : std::string(acted.message());
    if (!problem.empty() && problem != control->second.rule_problem) {
      LogWarning("model %s: %s", watch.model, problem);
    }
    control->second.rule_problem = problem;
  }
}

void ModelManager::UpdateShadow(const std::string& model, int64_t shadow_version, double fraction,
                                std::string problem) {
  // Only the manager's thread changes the table, and this is it.
  const std::shared_ptr<ServingModel> primary = table_.Version(model, table_.DefaultVersion(model));
  std::shared_ptr<ServingModel> shadow =
      shadow_version != 0 ? table_.Version(model, shadow_version) : nullptr;
  if (primary == nullptr || shadow == nullptr) {
    shadow_version = 0;
    shadow.reset();
  }
  std::shared_ptr<ServingModel> old_primary;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Control& control = ControlLocked(model);
    control.shadow_problem = problem;
    if (control.tap_primary.lock() == primary && control.tap_shadow.lock() == shadow &&
        control.shadow_version == shadow_version && control.shadow_fraction == fraction) {
      table_.SetRoles(model, control.tap != nullptr ? shadow_version : 0, control.rollback.version);
      return;  // as it is
    }
    old_primary = control.tap_primary.lock();
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
  Control& control = ControlLocked(model);
  table_.SetRoles(model, tap != nullptr ? shadow_version : 0, control.rollback.version);
  control.tap = std::move(tap);
  control.tap_primary = primary;
  control.tap_shadow = shadow;
  control.shadow_version = shadow_version;
  control.shadow_fraction = fraction;
  control.shadow_problem = problem;
}

}  // namespace matid
