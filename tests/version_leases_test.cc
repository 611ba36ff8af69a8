// Leases on a loaded version and the state moves a version may make: the
// last lease dropped hands the model back (on the thread that dropped it)
// and wakes the manager; after Close() it is destroyed where it drops.
#include "server/repository/version_leases.h"

#include <atomic>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/model_version_state.h"
#include "tests/fake_backend.h"

namespace matid {
namespace {

std::unique_ptr<ServingModel> NewModel() {
  auto model = ServingModel::Create(ServingOptions(), std::make_unique<FakeBackend>(), "parts", "1",
                                    nullptr);
  EXPECT_TRUE(model.ok()) << model.status();
  return *std::move(model);
}

TEST(VersionLeases, TheLastLeaseDroppedHandsTheModelBackAndWakesTheManager) {
  std::atomic<int> released{0};
  auto leases = VersionLeases::Create([&] { ++released; });
  std::shared_ptr<ServingModel> lease = leases->Lease(NewModel());
  const ServingModel* address = lease.get();
  std::shared_ptr<const ServingModel> request = lease;  // a request in flight
  lease.reset();
  EXPECT_EQ(released, 0);
  EXPECT_TRUE(leases->TakeReleased().empty());
  std::thread([request = std::move(request)]() mutable { request.reset(); }).join();
  EXPECT_EQ(released, 1);
  std::vector<std::unique_ptr<ServingModel>> back = leases->TakeReleased();
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].get(), address);  // not destroyed: the manager frees it
  EXPECT_TRUE(leases->TakeReleased().empty());
}

TEST(VersionLeases, AfterCloseAModelIsDestroyedWhereItsLastLeaseDrops) {
  std::atomic<int> released{0};
  auto leases = VersionLeases::Create([&] { ++released; });
  std::shared_ptr<ServingModel> lease = leases->Lease(NewModel());
  leases->Close();
  lease.reset();
  EXPECT_EQ(released, 0);
  EXPECT_TRUE(leases->TakeReleased().empty());
  // And a lease that outlives its leases object destroys its model too.
  std::shared_ptr<ServingModel> orphan = VersionLeases::Create(nullptr)->Lease(NewModel());
  orphan.reset();
}

TEST(ModelVersionState, OnlyTheLifecycleMovesAreLegal) {
  using State = ModelVersionState;
  EXPECT_TRUE(IsLegalTransition(std::nullopt, State::kLoading));
  EXPECT_TRUE(IsLegalTransition(std::nullopt, State::kFailed));  // a pinned folder missing
  EXPECT_FALSE(IsLegalTransition(std::nullopt, State::kAvailable));
  EXPECT_TRUE(IsLegalTransition(State::kLoading, State::kAvailable));
  EXPECT_TRUE(IsLegalTransition(State::kLoading, State::kFailed));
  EXPECT_FALSE(IsLegalTransition(State::kLoading, State::kLoading));
  EXPECT_TRUE(IsLegalTransition(State::kFailed, State::kLoading));  // its folder changed
  EXPECT_TRUE(IsLegalTransition(State::kFailed, State::kFailed));   // a new reason
  EXPECT_FALSE(IsLegalTransition(State::kFailed, State::kAvailable));
  for (State to : {State::kLoading, State::kAvailable, State::kUnloading, State::kFailed}) {
    EXPECT_FALSE(IsLegalTransition(State::kAvailable, to)) << ModelVersionStateName(to);
    EXPECT_FALSE(IsLegalTransition(State::kUnloading, to)) << ModelVersionStateName(to);
  }
}

}  // namespace
}  // namespace matid
