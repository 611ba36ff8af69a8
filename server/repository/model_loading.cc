// ModelManager: loading a version within the memory budget, retiring and
// releasing versions, and their states (manager thread).
#include <malloc.h>

#include <filesystem>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "server/repository/golden_check.h"
#include "server/repository/model_manager.h"

namespace matid {

absl::StatusOr<std::unique_ptr<ServingModel>> ModelManager::LoadVersion(const std::string& model,
                                                                        int64_t version,
                                                                        const std::string& dir) {
  // The loader works at lower priority on a thread of its own (the torch
  // backend's loading thread); the new version's batcher workers, started
  // on this thread, serve at normal priority.
  absl::StatusOr<std::unique_ptr<ModelBackend>> backend = loader_(dir);
  if (!backend.ok()) return backend.status();
  absl::StatusOr<std::unique_ptr<ServingModel>> serving = ServingModel::Create(
      options_.serving, *std::move(backend), model, absl::StrCat(version), metrics_);
  if (!serving.ok()) return serving.status();
  // Before it serves: its golden images, if it has any.
  if (absl::Status golden = CheckGoldenImages(dir, **serving); !golden.ok()) return golden;
  return serving;
}

void ModelManager::LoadOne(const std::string& model, int64_t version) {
  const std::string dir = VersionDir(options_.repository, model, version);
  const std::string stamp = VersionDirStamp(dir);
  SetState(model, version, ModelVersionState::kLoading, "");
  {
    std::lock_guard<std::mutex> lock(mu_);
    EntryLocked(model).versions.at(version).stamp = stamp;
  }
  std::error_code ignored;
  const int64_t bytes =
      static_cast<int64_t>(std::filesystem::file_size(dir + "/" + options_.model_file, ignored));
  if (absl::Status room = MakeRoom(model, ignored ? 0 : bytes); !room.ok()) {
    LogWarning("%s", absl::StrCat("model ", model, " version ", version, " ", room.message()));
    SetState(model, version, ModelVersionState::kFailed, std::string(room.message()));
    std::lock_guard<std::mutex> lock(mu_);
    EntryLocked(model).versions.at(version).stamp.clear();  // memory may free up: retry next rescan
    return;
  }
  NotifyChanged();
  LogInfo("model %s version %d: loading %s", model, version, dir);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<ServingModel>> serving = LoadVersion(model, version, dir);
  if (metrics_ != nullptr) metrics_->RecordModelLoad(model, absl::StrCat(version), serving.ok());
  if (!serving.ok()) {
    LogWarning("model %s version %d FAILED: %s", model, version, serving.status().message());
    SetState(model, version, ModelVersionState::kFailed, std::string(serving.status().message()));
    return;
  }
  LogInfo("model %s version %d: AVAILABLE (%s, sha256 %s) after %s", model, version,
          (*serving)->identity().variant, (*serving)->identity().sha256,
          absl::FormatDuration(absl::Now() - start));
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = EntryLocked(model).versions.at(version);
    slot.model = leases_->Lease(*std::move(serving));
    slot.bytes = ignored ? 0 : bytes;
  }
  SetState(model, version, ModelVersionState::kAvailable, "");
}

void ModelManager::SetState(const std::string& model, int64_t version, ModelVersionState state,
                            const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& versions = EntryLocked(model).versions;
    const auto found = versions.find(version);
    const std::optional<ModelVersionState> from =
        found == versions.end() ? std::nullopt : std::optional(found->second.state);
    if (!IsLegalTransition(from, state)) {
      LogError("bug: model %s version %d: %s -> %s is not a legal transition; not made", model,
               version, from.has_value() ? ModelVersionStateName(*from) : "(new)",
               ModelVersionStateName(state));
      return;
    }
    Slot& slot = versions.try_emplace(version).first->second;  // a new version's slot
    slot.state = state;
    slot.reason = reason;
  }
  monitor_.Record(model, version, ModelVersionStateName(state));
}

void ModelManager::RetireLocked(const std::string& model, int64_t version) {
  const auto entry = models_.find(model);
  if (entry == models_.end()) return;
  auto slot = entry->second.versions.find(version);
  if (slot == entry->second.versions.end()) return;
  if (entry->second.default_version == version) entry->second.default_version = 0;
  if (slot->second.model == nullptr) {  // FAILED or never loaded: nothing to release
    entry->second.versions.erase(slot);
    monitor_.Record(model, version, "");
    return;
  }
  LogInfo("%s", absl::StrCat("model ", model, " version ", version,
                             ": UNLOADING (released when its last request is done)"));
  const ModelIdentity identity = slot->second.model->identity();
  retired_.push_back(
      {model, version, slot->second.model, slot->second.model.get(), slot->second.bytes, identity});
  // Its lease goes with the slot: when the last request drops its own, the
  // version is handed back and released (ReleaseUnused).
  entry->second.versions.erase(slot);
  monitor_.Record(model, version, "UNLOADING");
}

void ModelManager::ReleaseUnused() {
  std::vector<std::unique_ptr<ServingModel>> released = leases_->TakeReleased();
  if (released.empty()) return;
  std::set<const ServingModel*> addresses;
  for (const auto& model : released) addresses.insert(model.get());
  released.clear();  // drains (nothing is queued) and frees each model
  // Hand the freed weights back to the kernel: the server keeps freed memory
  // on its heaps (malloc_tuning.h), so without this every arena a load
  // touched would hold its high-water mark across swaps.
  malloc_trim(0);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (addresses.count(it->address) == 0) {
        ++it;
        continue;
      }
      LogInfo("%s", absl::StrCat("model ", it->model, " version ", it->version, ": released"));
      const auto entry = models_.find(it->model);
      const bool reloaded = entry != models_.end() && entry->second.versions.count(it->version) > 0;
      if (!reloaded) monitor_.Record(it->model, it->version, "");
      it = retired_.erase(it);
    }
    for (auto it = models_.begin(); it != models_.end();) {
      it = it->second.versions.empty() && it->second.default_version == 0 ? models_.erase(it)
                                                                          : std::next(it);
    }
  }
  NotifyChanged();
}

int64_t ModelManager::LoadedBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t total = 0;
  for (const auto& [name, entry] : models_) {
    for (const auto& [version, slot] : entry.versions) {
      if (slot.model != nullptr) total += slot.bytes;
    }
  }
  for (const Retired& retired : retired_) total += retired.bytes;
  return total;
}

absl::Status ModelManager::MakeRoom(const std::string& model, int64_t needed) {
  const int64_t limit = options_.max_model_memory_bytes;
  auto over = [&] { return limit > 0 && LoadedBytes() + needed > limit; };
  auto refusal = [&](absl::string_view why) {
    constexpr int64_t kMiB = 1 << 20;
    return absl::ResourceExhaustedError(
        absl::StrCat("not loaded: its ", (needed + kMiB - 1) / kMiB, " MiB ", why,
                     " would exceed --max_model_memory_mb=", limit / kMiB));
  };
  if (!over()) return absl::OkStatus();
  if (!options_.unload_first_over_memory) {
    return refusal(absl::StrCat(
        "beside the ", LoadedBytes() >> 20,
        " MiB loaded (--unload_first_over_memory unloads the serving version first, answering "
        "UNAVAILABLE meanwhile)"));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int64_t> loaded;
    for (const auto& [version, slot] : EntryLocked(model).versions) {
      if (slot.model != nullptr) loaded.push_back(version);
    }
    LogInfo("%s", absl::StrCat("model ", model, ": unloading ", absl::StrJoin(loaded, ", "),
                               " first to make room (--unload_first_over_memory)"));
    for (int64_t version : loaded) RetireLocked(model, version);
  }
  NotifyChanged();
  // Their admitted requests finish, then their leases hand them back: wait
  // for each release (at most a minute for a request that does not end).
  const absl::Time give_up = absl::Now() + absl::Minutes(1);
  for (;;) {
    const uint64_t seen = wakeup_.generation();
    ReleaseUnused();
    if (!over() || absl::Now() >= give_up) break;
    wakeup_.WaitForChange(seen, give_up - absl::Now());
  }
  return over() ? refusal("even with the model's other versions unloaded") : absl::OkStatus();
}

void ModelManager::NotifyChanged() { monitor_.Changed(); }

}  // namespace matid
