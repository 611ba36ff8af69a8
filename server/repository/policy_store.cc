#include "server/repository/policy_store.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/atomic_file.h"
#include "common/log.h"

namespace matid {

absl::StatusOr<RepositoryModel> PolicyStore::Scan(const std::string& model) const {
  auto scan = ScanModelRepository(repository_);
  if (!scan.ok()) return scan.status();
  std::vector<std::string> names;
  for (RepositoryModel& candidate : *scan) {
    if (candidate.name == model) return std::move(candidate);
    names.push_back(candidate.name);
  }
  return absl::NotFoundError(absl::StrCat("model '", model, "' is not in ", repository_,
                                          "; models: ", absl::StrJoin(names, ", ")));
}

absl::StatusOr<RepositoryModel> PolicyStore::Update(const std::string& model,
                                                    const Change& change) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<RepositoryModel> scanned = Scan(model);
  if (!scanned.ok()) return scanned.status();
  absl::StatusOr<std::optional<VersionPolicy>> changed = change(*scanned);
  if (!changed.ok()) return changed.status();
  if (changed->has_value()) {
    if (absl::Status written = Write(model, **changed); !written.ok()) return written;
  }
  return scanned;
}

absl::Status PolicyStore::Write(const std::string& model, const VersionPolicy& policy) const {
  const std::string path = absl::StrCat(repository_, "/", model, "/", kVersionPolicyFile);
  const std::string text = VersionPolicyJson(policy);
  if (absl::Status written = WriteFileAtomically(path, text); !written.ok()) return written;
  LogInfo("%s",
          absl::StrCat("model ", model, ": ", path, " now says ", text.substr(0, text.size() - 1)));
  return absl::OkStatus();
}

}  // namespace matid
