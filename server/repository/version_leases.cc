#include "server/repository/version_leases.h"

#include <utility>

namespace matid {
std::shared_ptr<VersionLeases> VersionLeases::Create(std::function<void()> released) {
  return std::shared_ptr<VersionLeases>(new VersionLeases(std::move(released)));
}

std::shared_ptr<ServingModel> VersionLeases::Lease(std::unique_ptr<ServingModel> model) {
  return std::shared_ptr<ServingModel>(std::unique_ptr<ServingModel, HandBackDeleter>(
      model.release(), HandBackDeleter{weak_from_this()}));
}

void VersionLeases::HandBack(std::unique_ptr<ServingModel> model) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_) {
      returned_.push_back(std::move(model));
    }
  }
  if (model != nullptr) return;  // closed: destroyed here, on leaving
  if (released_) released_();
}

std::vector<std::unique_ptr<ServingModel>> VersionLeases::TakeReleased() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(returned_, {});
}

void VersionLeases::Close() {
  std::vector<std::unique_ptr<ServingModel>> returned;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    returned = std::exchange(returned_, {});
  }
}

void VersionLeases::HandBackDeleter::operator()(ServingModel* model) const {
  std::unique_ptr<ServingModel> owned(model);
  if (std::shared_ptr<VersionLeases> alive = leases.lock()) {
    alive->HandBack(std::move(owned));
  }
}

}  // namespace matid
