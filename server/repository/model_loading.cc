// ModelManager: loading a version within the memory budget, retiring and
// releasing versions, and their states (manager thread).
#include <malloc.h>

#include <filesystem>
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

bool ModelManager::EnsureLoaded(const std::string& model, int64_t version) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (models_[model].versions[version].state == ModelVersionState::kAvailable) return true;
  }
  // Only the manager thread changes slots, so the state read above holds.
  const std::string dir = VersionDir(options_.repository, model, version);
  const std::string stamp = VersionDirStamp(dir);
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = models_[model].versions[version];
    if (slot.state == ModelVersionState::kFailed && slot.stamp == stamp) return false;
    slot.stamp = stamp;
  }
  std::error_code ignored;
  const int64_t bytes =
      static_cast<int64_t>(std::filesystem::file_size(dir + "/" + options_.model_file, ignored));
  if (absl::Status room = MakeRoom(model, ignored ? 0 : bytes); !room.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      Slot& slot = models_[model].versions[version];
      if (slot.reason != room.message()) {
        LogWarning("%s", absl::StrCat("model ", model, " version ", version, " ", room.message()));
      }
      slot.stamp.clear();  // memory may free up: try again on the next rescan
    }
    SetState(model, version, ModelVersionState::kFailed, std::string(room.message()));
    return false;
  }
  SetState(model, version, ModelVersionState::kLoading, "");
  NotifyChanged();
  LogInfo("model %s version %d: loading %s", model, version, dir);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<ServingModel>> serving = LoadVersion(model, version, dir);
  if (metrics_ != nullptr) metrics_->RecordModelLoad(model, absl::StrCat(version), serving.ok());
  if (!serving.ok()) {
    LogWarning("model %s version %d FAILED: %s", model, version, serving.status().message());
    SetState(model, version, ModelVersionState::kFailed, std::string(serving.status().message()));
    return false;
  }
  LogInfo("model %s version %d: AVAILABLE (%s, sha256 %s) after %s", model, version,
          (*serving)->identity().variant, (*serving)->identity().sha256,
          absl::FormatDuration(absl::Now() - start));
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = models_[model].versions[version];
    slot.model = std::shared_ptr<ServingModel>(*std::move(serving));
    slot.bytes = ignored ? 0 : bytes;
  }
  SetState(model, version, ModelVersionState::kAvailable, "");
  return true;
}

void ModelManager::SetState(const std::string& model, int64_t version, ModelVersionState state,
                            const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = models_[model].versions[version];
    slot.state = state;
    slot.reason = reason;
  }
  if (metrics_ != nullptr) {
    metrics_->SetModelVersionState(model, absl::StrCat(version), ModelVersionStateName(state));
  }
}

void ModelManager::RetireLocked(const std::string& model, int64_t version) {
  Entry& entry = models_[model];
  auto slot = entry.versions.find(version);
  if (slot == entry.versions.end()) return;
  if (entry.default_version == version) entry.default_version = 0;
  if (slot->second.model == nullptr) {  // FAILED or never loaded: nothing to release
    entry.versions.erase(slot);
    if (metrics_ != nullptr) metrics_->SetModelVersionState(model, absl::StrCat(version), "");
    return;
  }
  LogInfo("%s", absl::StrCat("model ", model, " version ", version,
                             ": UNLOADING (released when its last request is done)"));
  const ModelIdentity identity = slot->second.model->identity();
  retired_.push_back({model, version, std::move(slot->second.model), slot->second.bytes, identity});
  entry.versions.erase(slot);
  if (metrics_ != nullptr) {
    metrics_->SetModelVersionState(model, absl::StrCat(version), "UNLOADING");
  }
}

void ModelManager::ReleaseUnused() {
  // Taken out of their entries under the lock; the entries stay listed
  // (UNLOADING, counted in the memory budget) until the memory is freed.
  std::vector<std::shared_ptr<ServingModel>> releasing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Retired& retired : retired_) {
      // Only this list holds it, and nothing can take a new reference (it
      // is out of routing): its last request is done.
      if (retired.serving != nullptr && retired.serving.use_count() == 1) {
        releasing.push_back(std::move(retired.serving));
      }
    }
  }
  if (releasing.empty()) return;
  releasing.clear();  // drains (nothing is queued) and frees each model
  // Hand the freed weights back to the kernel: the server keeps freed memory
  // on its heaps (malloc_tuning.h), so without this every arena a load
  // touched would hold its high-water mark across swaps.
  malloc_trim(0);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (it->serving != nullptr) {
        ++it;
        continue;
      }
      LogInfo("%s", absl::StrCat("model ", it->model, " version ", it->version, ": released"));
      const auto entry = models_.find(it->model);
      const bool reloaded = entry != models_.end() && entry->second.versions.count(it->version) > 0;
      if (metrics_ != nullptr && !reloaded) {
        metrics_->SetModelVersionState(it->model, absl::StrCat(it->version), "");
      }
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
    Entry& entry = models_[model];
    std::vector<int64_t> loaded;
    for (const auto& [version, slot] : entry.versions) {
      if (slot.model != nullptr) loaded.push_back(version);
    }
    LogInfo("%s", absl::StrCat("model ", model, ": unloading ", absl::StrJoin(loaded, ", "),
                               " first to make room (--unload_first_over_memory)"));
    for (int64_t version : loaded) RetireLocked(model, version);
  }
  NotifyChanged();
  // Their admitted requests finish, then they are released.
  for (int i = 0; i < 6000 && over(); ++i) {
    ReleaseUnused();
    if (!over()) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return over() ? refusal("even with the model's other versions unloaded") : absl::OkStatus();
}

void ModelManager::NotifyChanged() {
  std::function<void()> listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    listener = listener_;
  }
  if (listener) listener();
}

}  // namespace matid
