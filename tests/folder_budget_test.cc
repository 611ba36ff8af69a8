// FolderBudget: the bound on folders kept for people (camera inspection
// frames, server disagreeing images), with a fake folder: `on_disk` is what
// a count of the folder would find, raised by each file the test "writes".
#include "common/folder_budget.h"

#include "gtest/gtest.h"

namespace matid {
namespace {

// TryTake, and when it allows it, the file is written.
bool TakeAndWrite(FolderBudget& budget, int& on_disk) {
  if (!budget.TryTake()) return false;
  ++on_disk;
  return true;
}

TEST(FolderBudget, CountsWhatIsThereThenRefusesBeyondTheLimit) {
  int on_disk = 1;
  FolderBudget budget(
      3, [&] { return on_disk; }, absl::Hours(1));
  EXPECT_TRUE(TakeAndWrite(budget, on_disk));
  EXPECT_TRUE(TakeAndWrite(budget, on_disk));
  EXPECT_FALSE(TakeAndWrite(budget, on_disk)) << "1 already there + 2 written = 3";
  EXPECT_FALSE(TakeAndWrite(budget, on_disk));
  EXPECT_EQ(on_disk, 3);
}

TEST(FolderBudget, AFullFolderIsRecountedAfterTheIntervalOnly) {
  int on_disk = 2;
  int counts = 0;
  FolderBudget budget(
      2,
      [&] {
        ++counts;
        return on_disk;
      },
      absl::Hours(1));
  EXPECT_FALSE(TakeAndWrite(budget, on_disk));  // full: counted again, still full
  EXPECT_EQ(counts, 2);
  on_disk = 0;  // an operator empties the folder
  EXPECT_FALSE(TakeAndWrite(budget, on_disk)) << "not recounted within the interval";
  EXPECT_EQ(counts, 2);

  on_disk = 2;
  FolderBudget eager(
      2, [&] { return on_disk; }, absl::ZeroDuration());
  EXPECT_FALSE(TakeAndWrite(eager, on_disk));
  on_disk = 1;  // an operator removes one
  EXPECT_TRUE(TakeAndWrite(eager, on_disk)) << "recounted: room for one";
  EXPECT_FALSE(TakeAndWrite(eager, on_disk));
}

TEST(FolderBudget, AFailedWriteGivesItsPlaceBack) {
  int on_disk = 0;
  FolderBudget budget(
      1, [&] { return on_disk; }, absl::Hours(1));
  EXPECT_TRUE(budget.TryTake());
  budget.GiveBack();  // the write failed: nothing on disk
  EXPECT_TRUE(TakeAndWrite(budget, on_disk));
  EXPECT_FALSE(TakeAndWrite(budget, on_disk));
}

}  // namespace
}  // namespace matid
