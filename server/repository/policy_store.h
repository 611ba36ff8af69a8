// Each model's version_policy.json, read and rewritten in one place: Update()
// is the only read-modify-write of the file, and it holds the store's one
// lock from the scan to the rename, so two changes (operators' calls and the
// manager's own promotions and rollbacks) each keep the other's edit. A
// change never starts from a policy read earlier. Thread-safety: every
// method may be called from any thread; Update() calls `change` under the
// store's lock, so `change` must not call back into the store.
#ifndef MATID_SERVER_REPOSITORY_POLICY_STORE_H_
#define MATID_SERVER_REPOSITORY_POLICY_STORE_H_

#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/repository/model_repository.h"

namespace matid {

class PolicyStore {
 public:
  explicit PolicyStore(std::string repository) : repository_(std::move(repository)) {}

  // The model as it is on disk now; NOT_FOUND naming the repository's models.
  absl::StatusOr<RepositoryModel> Scan(const std::string& model) const;

  // The new policy for the model as scanned under the lock; nullopt: leave
  // the file as it is. An error is returned as it is and nothing is written.
  using Change =
      std::function<absl::StatusOr<std::optional<VersionPolicy>>(const RepositoryModel& scanned)>;
  // Scans the model, asks `change`, and writes what it returns atomically
  // (common/atomic_file.h), logging the new text. Returns the model as it
  // was scanned, before the change.
  absl::StatusOr<RepositoryModel> Update(const std::string& model, const Change& change);

 private:
  absl::Status Write(const std::string& model, const VersionPolicy& policy) const;

  const std::string repository_;
  std::mutex mu_;  // held across each Update
};

}  // namespace matid

#endif  // MATID_SERVER_REPOSITORY_POLICY_STORE_H_
