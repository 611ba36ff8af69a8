// A model directory is loaded only when every file its metadata.json lists
// a sha256 for is there and matches (written by `model_export publish`).
#include "server/backend/model_files.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

using ::testing::HasSubstr;

// sha256("abc"), FIPS 180-2's first example.
constexpr char kAbcSha256[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

class ModelFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::path(::testing::TempDir()) / "model-files").string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ + "/model.pt") << "abc";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(ModelFilesTest, FileSha256IsTheStandardDigest) {
  auto digest = FileSha256(dir_ + "/model.pt");
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, kAbcSha256);
  EXPECT_EQ(FileSha256(dir_ + "/none").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelFilesTest, NoDigestsOrMatchingOnesAreAccepted) {
  ModelInfo info;
  EXPECT_TRUE(VerifyModelFiles(dir_, info).ok());
  info.file_sha256 = {{"model.pt", kAbcSha256}};
  EXPECT_TRUE(VerifyModelFiles(dir_, info).ok());
}

TEST_F(ModelFilesTest, TruncatedMissingOrOddlyNamedFilesAreRefused) {
  ModelInfo info;
  info.file_sha256 = {{"model.pt", kAbcSha256}};
  std::ofstream(dir_ + "/model.pt") << "ab";  // truncated
  absl::Status changed = VerifyModelFiles(dir_, info);
  EXPECT_EQ(changed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(changed.message(), HasSubstr("model.pt does not match the sha256"));

  info.file_sha256 = {{"model_int8.pt", kAbcSha256}};
  absl::Status missing = VerifyModelFiles(dir_, info);
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.message(), HasSubstr("model_int8.pt is missing"));

  info.file_sha256 = {{"../model.pt", kAbcSha256}};
  EXPECT_EQ(VerifyModelFiles(dir_, info).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace matid
