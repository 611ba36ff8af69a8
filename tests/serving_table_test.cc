// The serving table alone, without a manager thread or gRPC: a swap routes
// new requests to the new version in one step while an admitted request
// keeps the old one, which is UNLOADING until that request drops it and is
// freed when the manager takes it back; illegal state moves are refused.
#include "server/repository/serving_table.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fake_backend.h"

namespace matid {
namespace {

using ::testing::ElementsAre;

std::unique_ptr<ServingModel> NewModel(int64_t version) {
  auto model = ServingModel::Create(ServingOptions(), std::make_unique<FakeBackend>(), "parts",
                                    absl::StrCat(version), nullptr);
  EXPECT_TRUE(model.ok()) << model.status();
  return *std::move(model);
}

class ServingTableTest : public ::testing::Test {
 protected:
  void Load(int64_t version) {
    ASSERT_TRUE(table_.SetState("parts", version, ModelVersionState::kLoading, ""));
    table_.Install("parts", version, NewModel(version), 100);
  }
  std::vector<std::string> States() {
    std::vector<std::string> states;
    for (const ModelVersionStatus& status : table_.Statuses()) {
      states.push_back(absl::StrCat(status.version, " ", ModelVersionStateName(status.state),
                                    status.is_default ? " default" : ""));
    }
    return states;
  }

  std::shared_ptr<VersionLeases> leases_ = VersionLeases::Create(nullptr);
  VersionStateMonitor monitor_{nullptr};
  ServingTable table_{"", false, leases_.get(), &monitor_};
};

TEST_F(ServingTableTest, ASwapRoutesNewRequestsAtOnceAndFreesTheOldWhenItsLastRequestEnds) {
  Load(1);
  table_.Route("parts", 1, {});
  auto admitted = table_.Resolve("", 0);  // a request in flight on version 1
  ASSERT_TRUE(admitted.ok());
  Load(2);
  table_.Route("parts", 2, {1});
  EXPECT_EQ((*table_.Resolve("parts", 0))->identity().version, "2");
  EXPECT_EQ(table_.Resolve("parts", 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(States(), ElementsAre("2 AVAILABLE default", "1 UNLOADING"));
  EXPECT_EQ(table_.LoadedBytes(), 200);  // counted until freed
  EXPECT_FALSE(table_.ReleaseReturned());
  admitted->reset();  // the request is done
  EXPECT_TRUE(table_.ReleaseReturned());
  EXPECT_THAT(States(), ElementsAre("2 AVAILABLE default"));
  EXPECT_EQ(table_.LoadedBytes(), 100);
}

TEST_F(ServingTableTest, IllegalStateMovesAreRefusedAndLeaveTheVersionAsItWas) {
  Load(1);
  EXPECT_FALSE(table_.SetState("parts", 1, ModelVersionState::kLoading, ""));
  EXPECT_FALSE(table_.SetState("parts", 3, ModelVersionState::kAvailable, ""));
  EXPECT_TRUE(table_.SetState("parts", 2, ModelVersionState::kFailed, "no folder"));
  EXPECT_THAT(States(), ElementsAre("1 AVAILABLE", "2 FAILED"));
  EXPECT_EQ(table_.Resolve("parts", 0).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace matid
