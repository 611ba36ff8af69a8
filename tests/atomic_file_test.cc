// WriteFileAtomically: replaces whole files, leaves no temporary file, is
// not stopped by another writer's staging name, and names what failed.
#include "common/atomic_file.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_contents.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class AtomicFile : public ::testing::Test {
 protected:
  AtomicFile() : dir_(fs::temp_directory_path() / absl::StrCat("matid-atomic-", getpid())) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~AtomicFile() override { fs::remove_all(dir_); }
  int Entries() const {
    return static_cast<int>(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()));
  }
  fs::path dir_;
};

TEST_F(AtomicFile, ReplacesTheWholeFileAndLeavesNothingElse) {
  const std::string path = (dir_ / "version_policy.json").string();
  ASSERT_TRUE(WriteFileAtomically(path, "first, and longer\n").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second\n").ok());
  EXPECT_EQ(*ReadFileContents(path), "second\n");
  EXPECT_EQ(Entries(), 1);
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
}

// Containers sharing a repository each run as pid 1: a staging name made
// from the pid is taken by another writer; a unique one never is.
TEST_F(AtomicFile, AnotherWritersStagingNameDoesNotStopIt) {
  const std::string path = (dir_ / "version_policy.json").string();
  fs::create_directories(absl::StrCat(path, ".tmp-", getpid()));
  fs::create_directories(path + ".tmp-1");
  ASSERT_TRUE(WriteFileAtomically(path, "mine\n").ok());
  EXPECT_EQ(*ReadFileContents(path), "mine\n");
  EXPECT_EQ(Entries(), 3);
}

TEST_F(AtomicFile, NamesThePathAndTheReasonWhenItCannotWrite) {
  const std::string path = (dir_ / "missing" / "version_policy.json").string();
  const absl::Status status = WriteFileAtomically(path, "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("No such file or directory"));

  const std::string over_a_folder = (dir_ / "a_folder").string();
  fs::create_directories(fs::path(over_a_folder) / "inside");
  const absl::Status refused = WriteFileAtomically(over_a_folder, "x");
  EXPECT_EQ(refused.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(refused.message(), HasSubstr("rename"));
  EXPECT_EQ(Entries(), 1);  // the staging file is gone
}

}  // namespace
}  // namespace matid
