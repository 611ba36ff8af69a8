#include "client/camera/inspection_folder.h"

#include "absl/strings/str_cat.h"
#include "common/file_contents.h"
#include "common/log.h"

namespace matid {
namespace {

void Add(prometheus::Counter* counter) {
  if (counter != nullptr) counter->Increment();
}

}  // namespace

absl::StatusOr<std::unique_ptr<InspectionFolder>> InspectionFolder::Create(const std::string& dir,
                                                                           int max_files,
                                                                           int64_t max_mb,
                                                                           Counters counters) {
  if (absl::Status writable = CheckFolderWritable(dir, "--inspection_dir"); !writable.ok()) {
    return writable;
  }
  return std::unique_ptr<InspectionFolder>(new InspectionFolder(dir, max_files, max_mb, counters));
}

InspectionFolder::InspectionFolder(const std::string& dir, int max_files, int64_t max_mb,
                                   Counters counters)
    : dir_(dir),
      max_files_(max_files),
      max_mb_(max_mb),
      counters_(counters),
      budget_(max_files, max_mb << 20, [dir] { return MeasureFolder(dir, ".jpg"); }) {}

void InspectionFolder::Save(const FullFrame& frame, const std::string& message_id) {
  // The whole ROI at full resolution, not the shrunk frame the model saw: a person labels it.
  absl::StatusOr<std::string> jpeg = FullResolutionJpeg(frame);
  if (!jpeg.ok()) {
    Add(counters_.write_failures);
    LogError("inspection frame not saved: %s", jpeg.status().ToString());
    return;
  }
  const int64_t bytes = static_cast<int64_t>(jpeg->size());
  if (!budget_.TryTake(bytes)) {
    Add(counters_.folder_full);
    if (!full_.exchange(true)) {
      LogWarning(
          "--inspection_dir=%s holds %d frames (--inspection_max_files) or %d MB "
          "(--inspection_max_mb): frames needing inspection are counted, not saved, until "
          "some are removed",
          dir_, max_files_, max_mb_);
    }
    return;
  }
  full_ = false;
  const std::string path = absl::StrCat(dir_, "/", message_id, ".jpg");
  if (absl::Status written = WriteFileContents(path, *jpeg); !written.ok()) {
    budget_.GiveBack(bytes);
    Add(counters_.write_failures);
    LogError("inspection frame not saved: %s", written.ToString());
  }
}

}  // namespace matid
