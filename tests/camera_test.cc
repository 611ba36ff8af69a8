// The camera's factory: options checked before anything starts, each error
// naming its flag.
#include "client/camera/camera.h"

#include <grpcpp/create_channel.h>

#include <filesystem>
#include <fstream>

#include "common/folder_budget.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

using ::testing::HasSubstr;

class EmptySource final : public FrameSource {
 public:
  absl::StatusOr<Frame> Next(const DecodeScale&) override {
    return absl::OutOfRangeError("no frames");
  }
  std::string description() const override { return "empty"; }
};

absl::Status CreateWith(const CameraOptions& options) {
  auto channel = grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
  return Camera::Create(
             options, std::make_unique<EmptySource>(), channel, [](const ResultMessage&) {},
             nullptr)
      .status();
}

TEST(CameraCreate, DefaultOptionsAreAccepted) { EXPECT_TRUE(CreateWith({}).ok()); }

TEST(CameraCreate, EachBadOptionNamesItsFlag) {
  struct Case {
    void (*set)(CameraOptions&);
    const char* flag;
  };
  const Case cases[] = {
      {[](CameraOptions& o) { o.camera_id = "line/1"; }, "--camera_id"},
      {[](CameraOptions& o) { o.camera_id = ""; }, "--camera_id"},
      {[](CameraOptions& o) { o.max_in_flight = 0; }, "--max_in_flight"},
      {[](CameraOptions& o) { o.max_pending = 0; }, "--max_pending"},
      {[](CameraOptions& o) { o.every_nth_frame = 0; }, "--every_nth_frame"},
      {[](CameraOptions& o) { o.top_k = 0; }, "--top_k"},
      {[](CameraOptions& o) { o.jpeg_quality = 101; }, "--jpeg_quality"},
      {[](CameraOptions& o) { o.inspection_threshold = 1.5; }, "--inspection_threshold"},
      {[](CameraOptions& o) { o.inspection_max_files = 0; }, "--inspection_max_files"},
      {[](CameraOptions& o) { o.inspection_max_mb = 0; }, "--inspection_max_mb"},
      {[](CameraOptions& o) { o.inspection_max_mb = kMaxFolderMb + 1; }, "--inspection_max_mb"},
      {[](CameraOptions& o) { o.pace_fps = -1; }, "--pace_fps"},
  };
  for (const Case& c : cases) {
    CameraOptions options;
    c.set(options);
    const absl::Status status = CreateWith(options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.flag;
    EXPECT_THAT(status.message(), HasSubstr(c.flag));
  }
}

TEST(CameraCreate, UnwritableInspectionDirIsRefusedAtCreation) {
  const std::filesystem::path file = std::filesystem::path(::testing::TempDir()) / "not-a-dir";
  { std::ofstream(file.string()) << "x"; }
  CameraOptions options;
  options.inspection_dir = (file / "inspect").string();  // under a regular file
  const absl::Status status = CreateWith(options);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("--inspection_dir"));
}

}  // namespace
}  // namespace matid
