// ModelManager: loading a version within the memory budget, and releasing
// retired ones (the manager's thread).
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
  if (!table_.SetState(model, version, ModelVersionState::kLoading, "")) return;
  table_.SetStamp(model, version, VersionDirStamp(dir));
  std::error_code ignored;
  const int64_t bytes =
      static_cast<int64_t>(std::filesystem::file_size(dir + "/" + options_.model_file, ignored));
  if (absl::Status room = MakeRoom(model, ignored ? 0 : bytes); !room.ok()) {
    LogWarning("%s", absl::StrCat("model ", model, " version ", version, " ", room.message()));
    table_.SetState(model, version, ModelVersionState::kFailed, std::string(room.message()));
    table_.SetStamp(model, version, "");  // memory may free up: tried again on the next rescan
    return;
  }
  NotifyChanged();
  LogInfo("model %s version %d: loading %s", model, version, dir);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<ServingModel>> serving = LoadVersion(model, version, dir);
  if (metrics_ != nullptr) metrics_->RecordModelLoad(model, absl::StrCat(version), serving.ok());
  if (!serving.ok()) {
    LogWarning("model %s version %d FAILED: %s", model, version, serving.status().message());
    table_.SetState(model, version, ModelVersionState::kFailed,
                    std::string(serving.status().message()));
    return;
  }
  LogInfo("model %s version %d: AVAILABLE (%s, sha256 %s) after %s", model, version,
          (*serving)->identity().variant, (*serving)->identity().sha256,
          absl::FormatDuration(absl::Now() - start));
  table_.Install(model, version, *std::move(serving), ignored ? 0 : bytes);
}

void ModelManager::ReleaseUnused() {
  if (table_.ReleaseReturned()) NotifyChanged();
}

absl::Status ModelManager::MakeRoom(const std::string& model, int64_t needed) {
  const int64_t limit = options_.max_model_memory_bytes;
  auto over = [&] { return limit > 0 && table_.LoadedBytes() + needed > limit; };
  auto refusal = [&](absl::string_view why) {
    constexpr int64_t kMiB = 1 << 20;
    return absl::ResourceExhaustedError(
        absl::StrCat("not loaded: its ", (needed + kMiB - 1) / kMiB, " MiB ", why,
                     " would exceed --max_model_memory_mb=", limit / kMiB));
  };
  if (!over()) return absl::OkStatus();
  if (!options_.unload_first_over_memory) {
    return refusal(absl::StrCat(
        "beside the ", table_.LoadedBytes() >> 20,
        " MiB loaded (--unload_first_over_memory unloads the serving version first, answering "
        "UNAVAILABLE meanwhile)"));
  }
  const std::vector<int64_t> unloaded = table_.RetireLoaded(model);
  LogInfo("%s", absl::StrCat("model ", model, ": unloading ", absl::StrJoin(unloaded, ", "),
                             " first to make room (--unload_first_over_memory)"));
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
