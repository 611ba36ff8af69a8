// The version plan as tables: given a model's folders and policy and what the
// manager holds, what is loaded next, what serves, what shadows, what is kept
// for a rollback and what is retired. No threads, no files.
#include "server/repository/version_plan.h"

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const HeldVersion kAvailable{true, ""};
HeldVersion Failed(const std::string& reason) { return {false, reason}; }

RepositoryModel Model(std::vector<int64_t> folders, VersionPolicy policy = {}) {
  RepositoryModel model;
  model.name = "parts";
  model.versions = std::move(folders);
  model.policy = std::move(policy);
  return model;
}

VersionPolicy Pinned(std::vector<int64_t> versions) {
  VersionPolicy policy;
  policy.versions = std::move(versions);
  return policy;
}

VersionPlan Plan(const RepositoryModel& model, const std::map<int64_t, HeldVersion>& held,
                 int64_t serving_default = 0) {
  return PlanVersions(model, held, serving_default, "/repo");
}

TEST(VersionPlan, LatestLoadsTheNewestFolderFirstThenServesItAndRetiresTheOld) {
  struct Row {
    std::vector<int64_t> folders;
    std::map<int64_t, HeldVersion> held;
    int64_t serving;
    int64_t load;
    int64_t default_version;
    std::vector<int64_t> retire;  // gone, then unwanted
  };
  const std::vector<Row> rows = {
      {{1, 2}, {}, 0, 2, 0, {}},                                     // nothing held: newest first
      {{1, 2}, {{2, Failed("bad")}}, 0, 1, 0, {}},                   // newest FAILED: the next
      {{1, 2}, {{1, kAvailable}}, 1, 2, 0, {}},                      // a new version: load it
      {{1, 2}, {{1, kAvailable}, {2, kAvailable}}, 1, 0, 2, {1}},    // loaded: swap, retire 1
      {{1, 2}, {{1, kAvailable}, {2, Failed("bad")}}, 1, 0, 1, {}},  // new one FAILED: 1 stays
      {{2}, {{1, kAvailable}, {2, kAvailable}}, 2, 0, 2, {1}},       // folder 1 gone
      {{1}, {{1, Failed("x")}}, 0, 0, 0, {}},                        // nothing loads
      {{2}, {{1, Failed("x")}}, 0, 2, 0, {1}},                       // a FAILED one's folder gone
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    const VersionPlan plan = Plan(Model(row.folders), row.held, row.serving);
    EXPECT_EQ(plan.load, row.load) << "row " << i;
    EXPECT_EQ(plan.default_version, row.default_version) << "row " << i;
    std::vector<int64_t> retired = plan.retire_gone;
    retired.insert(retired.end(), plan.retire.begin(), plan.retire.end());
    EXPECT_EQ(retired, row.retire) << "row " << i;
  }
}

TEST(VersionPlan, AVersionWhoseFolderIsGoneIsRetiredBeforeTheNextLoad) {
  const VersionPlan plan = Plan(Model({2, 3}), {{1, kAvailable}, {2, kAvailable}}, 1);
  EXPECT_EQ(plan.load, 3);
  EXPECT_THAT(plan.retire_gone, ElementsAre(1));  // frees its memory before 3 loads
  EXPECT_THAT(plan.retire, IsEmpty());            // 2 serves on while 3 loads
  EXPECT_EQ(plan.default_version, 0);             // the plan routes nothing during loads
}

TEST(VersionPlan, PinnedServesEachListedVersionAndTheHighestIsTheDefault) {
  const RepositoryModel model = Model({1, 2, 3}, Pinned({1, 2}));
  EXPECT_EQ(Plan(model, {}).load, 1);
  EXPECT_EQ(Plan(model, {{1, kAvailable}}).load, 2);
  const VersionPlan plan = Plan(model, {{1, kAvailable}, {2, kAvailable}, {3, kAvailable}}, 3);
  EXPECT_EQ(plan.load, 0);
  EXPECT_THAT(plan.serve, ElementsAre(1, 2));
  EXPECT_EQ(plan.default_version, 2);
  EXPECT_THAT(plan.retire, ElementsAre(3));
}

TEST(VersionPlan, APinnedVersionWithoutAFolderIsFailedNamingTheFolder) {
  const VersionPlan plan = Plan(Model({1}, Pinned({1, 4})), {{1, kAvailable}, {4, Failed("x")}});
  EXPECT_EQ(plan.load, 0);
  ASSERT_EQ(plan.fail.count(4), 1u);
  EXPECT_THAT(plan.fail.at(4), HasSubstr("names version 4 but /repo/parts/4 does not exist"));
  EXPECT_THAT(plan.retire_gone, IsEmpty());  // its FAILED entry stays to say so
  EXPECT_EQ(plan.default_version, 1);
  // A pinned version serving when its folder went is retired, then FAILED.
  const VersionPlan gone = Plan(Model({1}, Pinned({1, 4})), {{1, kAvailable}, {4, kAvailable}}, 4);
  EXPECT_THAT(gone.retire_gone, ElementsAre(4));
  EXPECT_EQ(gone.fail.count(4), 1u);
  EXPECT_EQ(gone.default_version, 1);
}

TEST(VersionPlan, AnUnreadablePolicyChangesNothing) {
  RepositoryModel model = Model({1, 2});
  model.policy_status = absl::InvalidArgumentError("version_policy.json: not JSON");
  const VersionPlan plan = Plan(model, {{1, kAvailable}}, 1);
  EXPECT_EQ(plan.policy_problem, "version_policy.json: not JSON");
  EXPECT_EQ(plan.load, 0);
  EXPECT_THAT(plan.retire_gone, IsEmpty());
  EXPECT_THAT(plan.retire, IsEmpty());
}

TEST(VersionPlan, TheShadowIsLoadedAfterTheServingVersionsAndRunsBesideTheDefault) {
  VersionPolicy policy = Pinned({1});
  policy.shadow_version = 2;
  const RepositoryModel model = Model({1, 2}, policy);
  EXPECT_EQ(Plan(model, {}).load, 1);
  const VersionPlan loading = Plan(model, {{1, kAvailable}}, 1);
  EXPECT_EQ(loading.load, 2);
  EXPECT_EQ(loading.shadow_version, 0);
  const VersionPlan plan = Plan(model, {{1, kAvailable}, {2, kAvailable}}, 1);
  EXPECT_EQ(plan.default_version, 1);
  EXPECT_EQ(plan.shadow_version, 2);
  EXPECT_THAT(plan.serve, ElementsAre(1));
  EXPECT_THAT(plan.retire, IsEmpty());
}

TEST(VersionPlan, AShadowThatCannotRunSaysWhy) {
  struct Row {
    std::vector<int64_t> folders;
    VersionPolicy policy;
    std::map<int64_t, HeldVersion> held;
    std::string problem;
  };
  VersionPolicy missing = Pinned({1});
  missing.shadow_version = 3;
  VersionPolicy failed = Pinned({1});
  failed.shadow_version = 2;
  VersionPolicy itself = Pinned({2});
  itself.shadow_version = 2;
  const std::vector<Row> rows = {
      {{1}, missing, {{1, kAvailable}}, "shadow version 3: /repo/parts/3 does not exist"},
      {{1, 2},
       failed,
       {{1, kAvailable}, {2, Failed("no labels")}},
       "shadow version 2 FAILED: no labels"},
      {{1, 2}, itself, {{2, kAvailable}}, "shadow version 2 is the default version"},
  };
  for (const Row& row : rows) {
    const VersionPlan plan = Plan(Model(row.folders, row.policy), row.held, 1);
    EXPECT_EQ(plan.load, 0);
    EXPECT_EQ(plan.shadow_version, 0);
    EXPECT_THAT(plan.shadow_problem, HasSubstr(row.problem));
  }
}

TEST(VersionPlan, ARollbackTargetStaysLoadedButDoesNotServeByDefault) {
  VersionPolicy promoted = Pinned({2});
  promoted.rollback.version = 1;
  promoted.rollback.promoted_version = 2;
  const RepositoryModel model = Model({1, 2}, promoted);
  const VersionPlan plan = Plan(model, {{1, kAvailable}, {2, kAvailable}}, 1);
  EXPECT_EQ(plan.default_version, 2);
  EXPECT_EQ(plan.rollback_target, 1);
  EXPECT_THAT(plan.serve, ElementsAre(2));
  EXPECT_THAT(plan.retire, IsEmpty());
  // After a restart it is loaded again, after the serving version.
  EXPECT_EQ(Plan(model, {{2, kAvailable}}).load, 1);
  // A target whose folder is gone is no target.
  EXPECT_EQ(Plan(Model({2}, promoted), {{2, kAvailable}}, 2).rollback_target, 0);
}

TEST(VersionPlan, PlanningAgainOnTheSameInputsGivesTheSamePlan) {
  VersionPolicy policy = Pinned({1, 3});
  policy.shadow_version = 2;
  const RepositoryModel model = Model({1, 2, 3}, policy);
  const std::map<int64_t, HeldVersion> held = {
      {1, kAvailable}, {2, kAvailable}, {3, Failed("bad")}, {5, kAvailable}};
  const VersionPlan first = Plan(model, held, 1);
  const VersionPlan second = Plan(model, held, 1);
  EXPECT_EQ(first.load, second.load);
  EXPECT_EQ(first.serve, second.serve);
  EXPECT_EQ(first.retire, second.retire);
  EXPECT_EQ(first.retire_gone, second.retire_gone);
  EXPECT_EQ(first.default_version, 1);  // 3 FAILED
  EXPECT_EQ(first.shadow_version, 2);
  EXPECT_THAT(first.retire_gone, ElementsAre(5));
  EXPECT_THAT(first.retire, IsEmpty());
}

}  // namespace
}  // namespace matid
