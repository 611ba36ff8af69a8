#include "server/repository/promotion_controller.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"

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

void PromotionController::Apply(const std::string& model, const VersionPolicy& policy,
                                int64_t shadow_version, const std::string& shadow_problem) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Control& control = ControlLocked(model);
    control.promote_when = policy.promote_when;
    const RollbackWindow& window = policy.rollback;
    if (window.version != control.rollback.version ||
        window.promoted_version != control.rollback.promoted_version ||
        window.until != control.rollback.until) {
      // A new window (or the server started inside one): count from now.
      const std::shared_ptr<ServingModel> promoted =
          wiring_.table->Version(model, window.promoted_version);
      control.rollback_baseline = promoted != nullptr ? promoted->outcomes() : OutcomeSnapshot();
    }
    control.rollback = window;
  }
  UpdateShadow(model, shadow_version, policy.shadow_fraction, shadow_problem);
}

void PromotionController::Forget(const std::string& model) { UpdateShadow(model, 0, 0, ""); }

void PromotionController::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  controls_.clear();
}

PromotionController::Control& PromotionController::ControlLocked(const std::string& model) {
  return controls_.try_emplace(model).first->second;
}

std::optional<std::string> PromotionController::ShadowNotRunning(const std::string& model,
                                                                 int64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto control = controls_.find(model);
  if (control != controls_.end() && control->second.tap != nullptr &&
      control->second.shadow_version == version) {
    return std::nullopt;
  }
  return control == controls_.end() || control->second.shadow_problem.empty()
             ? "it did not start"
             : control->second.shadow_problem;
}

absl::StatusOr<ShadowReport> PromotionController::Report(const std::string& model) const {
  std::shared_ptr<const ShadowTap> tap;
  ShadowReport report;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto found = controls_.find(model);
    if (found == controls_.end()) {
      return absl::NotFoundError(absl::StrCat("model '", model, "' is not served"));
    }
    const Control& control = found->second;
    tap = control.tap;
    auto primary = control.tap_primary.lock();
    auto shadow = control.tap_shadow.lock();
    if (tap == nullptr || primary == nullptr || shadow == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model '", model, "' has no shadow version",
          control.shadow_problem.empty() ? " (set one with matid-admin shadow)"
                                         : absl::StrCat(": ", control.shadow_problem)));
    }
    report.model = model;
    report.primary_version = primary->identity().version;
    report.shadow_version = shadow->identity().version;
    report.fraction = control.shadow_fraction;
    report.labels = primary->info().labels;
    report.promote_when = control.promote_when;
    if (wiring_.disagreements != nullptr) report.disagreements_dir = wiring_.disagreements->dir();
  }
  report.comparison = tap->comparison().Snapshot();
  return report;
}

absl::Status PromotionController::Promote(const std::string& model, const std::string& trigger,
                                          const std::string& reason, Caller caller) {
  int64_t primary = 0;
  int64_t shadow = 0;
  ShadowSnapshot compared;
  VersionPolicy promoted;
  auto scanned = wiring_.update_policy(
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
          primary = wiring_.table->DefaultVersion(model);
        }
        if (tap == nullptr || primary == 0) {
          return absl::FailedPreconditionError(
              absl::StrCat("model '", model, "': shadow version ", shadow, " is not running",
                           problem.empty() ? "" : absl::StrCat(" (", problem, ")")));
        }
        compared = tap->comparison().Snapshot();
        promoted.versions = {shadow};
        promoted.rollback = {primary, shadow,
                             wiring_.clock->Now() + scanned.policy.rollback_when.window,
                             scanned.policy.rollback_when};
        return promoted;
      });
  if (!scanned.ok()) return scanned.status();
  wiring_.rescan(caller);
  if (wiring_.table->DefaultVersion(model) != shadow) {
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
  wiring_.monitor->Event(std::move(event));
  return absl::OkStatus();
}

absl::Status PromotionController::RollBack(const std::string& model, const std::string& trigger,
                                           const std::string& reason,
                                           std::map<std::string, double> figures, Caller caller) {
  RollbackWindow window;
  auto scanned = wiring_.update_policy(
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
  wiring_.rescan(caller);
  if (wiring_.table->DefaultVersion(model) != window.version) {
    return absl::InternalError(absl::StrCat("model '", model, "': rolled back to version ",
                                            window.version, " but it does not serve; see the log"));
  }
  EventMessage event =
      ModelEvent("rollback", model, window.promoted_version, window.version, trigger, reason);
  event.figures = std::move(figures);
  LogEvent(event, "");
  wiring_.monitor->Event(std::move(event));
  return absl::OkStatus();
}

void PromotionController::CloseWindow(const std::string& model, const RollbackWindow& window) {
  bool closed = false;
  auto scanned = wiring_.update_policy(
      model, [&](const RepositoryModel& scanned) -> std::optional<VersionPolicy> {
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
    const std::shared_ptr<ServingModel> promoted =
        wiring_.table->Version(model, window.promoted_version);
    if (control != controls_.end() && promoted != nullptr) {
      outcomes = promoted->outcomes().Since(control->second.rollback_baseline);
    }
  }
  wiring_.rescan(Caller::kManagerThread);
  EventMessage event = ModelEvent(
      "rollback_window_closed", model, window.version, window.promoted_version, "policy",
      absl::StrFormat("no rollback within %s", absl::FormatDuration(window.rule.window)));
  event.figures = OutcomeFigures(outcomes, window.rule);
  LogEvent(event, absl::StrCat("; version ", window.version, " unloaded"));
  wiring_.monitor->Event(std::move(event));
}

bool PromotionController::Watching() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, control] : controls_) {
    if (control.rollback.version != 0 ||
        (control.promote_when.has_value() && control.tap != nullptr)) {
      return true;
    }
  }
  return false;
}

void PromotionController::CheckRules() {
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
          wiring_.table->DefaultVersion(name) == control.rollback.promoted_version) {
        watch.promoted = wiring_.table->Version(name, control.rollback.promoted_version);
      }
      watches.push_back(std::move(watch));
    }
  }
  for (const Watch& watch : watches) {
    absl::Status acted = absl::OkStatus();
    if (watch.window.version != 0 && wiring_.clock->Now() >= watch.window.until) {
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
        acted = Promote(watch.model, "policy", *why, Caller::kManagerThread);
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

void PromotionController::UpdateShadow(const std::string& model, int64_t shadow_version,
                                       double fraction, std::string problem) {
  // Only the manager's thread changes the table, and this is it.
  const std::shared_ptr<ServingModel> primary =
      wiring_.table->Version(model, wiring_.table->DefaultVersion(model));
  std::shared_ptr<ServingModel> shadow =
      shadow_version != 0 ? wiring_.table->Version(model, shadow_version) : nullptr;
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
      wiring_.table->SetRoles(model, control.tap != nullptr ? shadow_version : 0,
                              control.rollback.version);
      return;  // as it is
    }
    old_primary = control.tap_primary.lock();
  }
  if (old_primary != nullptr && old_primary != primary) old_primary->SetShadow(nullptr);
  std::shared_ptr<const ShadowTap> tap;
  if (shadow != nullptr) {
    auto comparison =
        std::make_shared<ShadowComparison>(static_cast<int>(primary->info().labels.size()));
    ShadowCounters counters =
        wiring_.metrics != nullptr
            ? wiring_.metrics->ShadowCountersFor(primary->info(), shadow->identity().version)
            : ShadowCounters();
    auto created = ShadowTap::Create(primary->info(), primary->identity().version, shadow, fraction,
                                     wiring_.shadow_batcher, std::move(comparison),
                                     std::move(counters), wiring_.disagreements);
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
  wiring_.table->SetRoles(model, tap != nullptr ? shadow_version : 0, control.rollback.version);
  control.tap = std::move(tap);
  control.tap_primary = primary;
  control.tap_shadow = shadow;
  control.shadow_version = shadow_version;
  control.shadow_fraction = fraction;
  control.shadow_problem = problem;
}

}  // namespace matid
