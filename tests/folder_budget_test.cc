// FolderBudget: the bound on folders kept for people (camera inspection
// frames, server disagreeing images), with a fake folder: `on_disk` is what
// a measure of the folder would find, raised by each file the test
// "writes", and a clock the test steps. MeasureFolder on a real folder.
#include "common/folder_budget.h"

#include <filesystem>

#include "common/file_contents.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

constexpr int64_t kNoByteLimit = int64_t{1} << 40;

// TryTake, and when it allows it, the file is written.
bool TakeAndWrite(FolderBudget& budget, FolderUsage& on_disk, int64_t bytes = 1) {
  if (!budget.TryTake(bytes)) return false;
  ++on_disk.files;
  on_disk.bytes += bytes;
  return true;
}

TEST(FolderBudget, CountsWhatIsThereThenRefusesBeyondTheFileLimit) {
  FolderUsage on_disk{1, 1};
  FolderBudget budget(
      3, kNoByteLimit, [&] { return on_disk; }, absl::Hours(1));
  EXPECT_TRUE(TakeAndWrite(budget, on_disk));
  EXPECT_TRUE(TakeAndWrite(budget, on_disk));
  EXPECT_FALSE(TakeAndWrite(budget, on_disk)) << "1 already there + 2 written = 3";
  EXPECT_FALSE(TakeAndWrite(budget, on_disk));
  EXPECT_EQ(on_disk.files, 3);
}

TEST(FolderBudget, RefusesAFileThatWouldPassTheByteLimitButTakesASmallerOne) {
  FolderUsage on_disk{1, 600};  // there before: counted
  FolderBudget budget(
      1000, 1000, [&] { return on_disk; }, absl::Hours(1));
  EXPECT_FALSE(TakeAndWrite(budget, on_disk, 401)) << "600 + 401 > 1000";
  EXPECT_TRUE(TakeAndWrite(budget, on_disk, 400)) << "exactly the limit";
  EXPECT_FALSE(TakeAndWrite(budget, on_disk, 1));
  EXPECT_EQ(on_disk.bytes, 1000);
}

TEST(FolderBudget, AFullFolderIsMeasuredAgainOnlyAfterTheInterval) {
  FolderUsage on_disk{2, 2};
  int measures = 0;
  absl::Time now = absl::FromUnixSeconds(1000);
  FolderBudget budget(
      2, kNoByteLimit,
      [&] {
        ++measures;
        return on_disk;
      },
      absl::Seconds(10), [&] { return now; });
  EXPECT_FALSE(TakeAndWrite(budget, on_disk));  // full: measured again, still full
  EXPECT_EQ(measures, 2);
  on_disk = FolderUsage{};  // an operator empties the folder
  now += absl::Seconds(9);
  EXPECT_FALSE(TakeAndWrite(budget, on_disk)) << "not measured within the interval";
  EXPECT_EQ(measures, 2);
  now += absl::Seconds(1);
  EXPECT_TRUE(TakeAndWrite(budget, on_disk)) << "measured again: room";
  EXPECT_EQ(measures, 3);
  EXPECT_TRUE(TakeAndWrite(budget, on_disk));
  EXPECT_FALSE(TakeAndWrite(budget, on_disk));
}

TEST(FolderBudget, AFailedWriteGivesItsPlaceAndBytesBack) {
  FolderUsage on_disk;
  FolderBudget budget(
      1, 100, [&] { return on_disk; }, absl::Hours(1));
  EXPECT_TRUE(budget.TryTake(100));
  budget.GiveBack(100);  // the write failed: nothing on disk
  EXPECT_TRUE(TakeAndWrite(budget, on_disk, 100));
  EXPECT_FALSE(TakeAndWrite(budget, on_disk, 0));
}

TEST(MeasureFolder, CountsFilesBySuffixAndBytesOfEveryFileInSubfolders) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "measured";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "parts");
  ASSERT_TRUE(WriteFileContents((dir / "parts" / "a.png").string(), std::string(300, 'x')).ok());
  ASSERT_TRUE(WriteFileContents((dir / "parts" / "a.json").string(), std::string(20, 'x')).ok());
  ASSERT_TRUE(WriteFileContents((dir / "b.json").string(), std::string(10, 'x')).ok());
  ASSERT_TRUE(WriteFileContents((dir / ".hidden.json").string(), "xy").ok());
  const FolderUsage usage = MeasureFolder(dir.string(), ".json");
  EXPECT_EQ(usage.files, 2);
  EXPECT_EQ(usage.bytes, 332);
  EXPECT_EQ(MeasureFolder((dir / "absent").string(), ".json").bytes, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace matid
