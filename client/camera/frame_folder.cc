#include "client/camera/frame_folder.h"

#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/camera/frame_encoding.h"
#include "client/camera/frame_source.h"
#include "common/file_contents.h"
#include "common/log.h"

namespace matid {
namespace {

constexpr int kSavedJpegQuality = 95;

void Add(prometheus::Counter* counter) {
  if (counter != nullptr) counter->Increment();
}

}  // namespace

absl::StatusOr<std::string> FullResolutionJpeg(const FullFrame& frame) {
  if (!frame.jpeg.empty() && frame.roi.empty()) return frame.jpeg;  // as the source read it
  try {
    cv::Mat full = frame.pixels;
    if (!frame.jpeg.empty()) {  // decoded at reduced scale for the model: decode it whole now
      absl::StatusOr<Frame> whole = DecodeJpegFrame(frame.jpeg, nullptr);
      if (!whole.ok()) return whole.status();
      absl::StatusOr<cv::Mat> roi = RegionOfInterest(whole->pixels, 1, frame.roi);
      if (!roi.ok()) return roi.status();
      full = *roi;
    }
    std::vector<uint8_t> bytes;
    if (full.empty() ||
        !cv::imencode(".jpg", full, bytes, {cv::IMWRITE_JPEG_QUALITY, kSavedJpegQuality})) {
      return absl::InternalError("JPEG encoding failed");
    }
    return std::string(bytes.begin(), bytes.end());
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("JPEG encoding failed: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<FrameFolder>> FrameFolder::Create(FrameFolderOptions options,
                                                                 Counters counters) {
  if (absl::Status writable = CheckFolderWritable(options.dir, options.dir_flag); !writable.ok()) {
    return writable;
  }
  return std::unique_ptr<FrameFolder>(new FrameFolder(std::move(options), counters));
}

FrameFolder::FrameFolder(FrameFolderOptions options, Counters counters)
    : options_(std::move(options)),
      counters_(counters),
      budget_(options_.max_files, options_.max_mb << 20,
              [dir = options_.dir] { return MeasureFolder(dir, ".jpg"); }) {}

bool FrameFolder::Save(const FullFrame& frame, const std::string& name) {
  absl::StatusOr<std::string> jpeg = FullResolutionJpeg(frame);
  if (!jpeg.ok()) {
    Add(counters_.write_failures);
    LogError("%s not saved: %s", options_.what, jpeg.status().ToString());
    return false;
  }
  const int64_t bytes = static_cast<int64_t>(jpeg->size());
  if (!budget_.TryTake(bytes)) {
    Add(counters_.folder_full);
    if (!full_.exchange(true)) LogWarning("%s", options_.when_full);
    return false;
  }
  full_ = false;
  const std::string path = absl::StrCat(options_.dir, "/", name, ".jpg");
  const std::string partial = absl::StrCat(options_.dir, "/.", name, ".jpg.partial");
  absl::Status written = WriteFileContents(partial, *jpeg);
  std::error_code error;
  if (written.ok()) std::filesystem::rename(partial, path, error);
  if (!written.ok() || error) {
    std::filesystem::remove(partial, error);
    budget_.GiveBack(bytes);
    Add(counters_.write_failures);
    LogError("%s not saved: %s", options_.what,
             written.ok() ? absl::StrCat("cannot rename to ", path) : written.ToString());
    return false;
  }
  Add(counters_.saved);
  return true;
}

}  // namespace matid
