// Who holds a loaded version. The manager wraps each ServingModel it loads
// in a lease, a shared_ptr that routing, shadow taps and requests in flight
// copy (model_router.h's handle). When the last copy is dropped, on
// whatever thread that is (often a batcher worker of the version itself),
// the model is not destroyed there: it is handed back to these leases, and
// `released` is called, so the manager's thread wakes, takes it and frees
// it. This is the release notification the memory budget waits on; nothing
// polls use counts. After Close() (the manager is going), a model whose
// last lease drops is destroyed where it drops.
// Thread-safety: every method may be called from any thread; a lease's
// last drop takes only this object's own lock, then calls `released`.
#ifndef MATID_SERVER_REPOSITORY_VERSION_LEASES_H_
#define MATID_SERVER_REPOSITORY_VERSION_LEASES_H_

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "server/core/serving_model.h"

namespace matid {

class VersionLeases : public std::enable_shared_from_this<VersionLeases> {
 public:
  // `released` is called, with no lock of this object held, after each model
  // is handed back.
  static std::shared_ptr<VersionLeases> Create(std::function<void()> released);

  // A lease on `model`; its copies share it.
  std::shared_ptr<ServingModel> Lease(std::unique_ptr<ServingModel> model);

  // The models whose last lease was dropped since the last call, to be
  // destroyed by the caller (which drains and frees them).
  std::vector<std::unique_ptr<ServingModel>> TakeReleased();

  // From now on a model is destroyed where its last lease drops.
  void Close();

 private:
  // A lease's deleter: hands the model back, or destroys it when the leases
  // are gone or closed.
  struct HandBackDeleter {
    std::weak_ptr<VersionLeases> leases;
    void operator()(ServingModel* model) const;
  };

  explicit VersionLeases(std::function<void()> released) : released_(std::move(released)) {}
  void HandBack(std::unique_ptr<ServingModel> model);

  const std::function<void()> released_;
  std::mutex mu_;
  std::vector<std::unique_ptr<ServingModel>> returned_;  // guarded by mu_
  bool closed_ = false;                                  // guarded by mu_
};

}  // namespace matid

#endif  // MATID_SERVER_REPOSITORY_VERSION_LEASES_H_
