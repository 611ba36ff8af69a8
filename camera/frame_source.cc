#include "camera/frame_source.h"

#include <algorithm>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/image_files.h"

namespace matid {
namespace {

class VideoSource final : public FrameSource {
 public:
  VideoSource(std::string spec, bool loop) : spec_(std::move(spec)), loop_(loop) {}

  absl::Status Open() {
    try {
      const bool is_device =
          !spec_.empty() && std::all_of(spec_.begin(), spec_.end(), absl::ascii_isdigit);
      if (is_device) {
        capture_.open(std::stoi(spec_));
      } else {
        capture_.open(spec_);
      }
    } catch (const cv::Exception& e) {
      return absl::UnavailableError(
          absl::StrCat("cannot open video source ", spec_, ": ", e.what()));
    }
    if (!capture_.isOpened()) {
      return absl::UnavailableError(absl::StrCat("cannot open video source ", spec_));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<cv::Mat> Next() override {
    cv::Mat frame;
    try {
      if (!capture_.read(frame) || frame.empty()) {
        if (loop_ && capture_.set(cv::CAP_PROP_POS_FRAMES, 0) && capture_.read(frame) &&
            !frame.empty()) {
          return frame;
        }
        return absl::OutOfRangeError(absl::StrCat(spec_, " ended"));
      }
    } catch (const cv::Exception& e) {
      return absl::UnavailableError(absl::StrCat("reading ", spec_, ": ", e.what()));
    }
    return frame;
  }

  std::string description() const override { return absl::StrCat("video ", spec_); }

 private:
  const std::string spec_;
  const bool loop_;
  cv::VideoCapture capture_;
};

class ImageFolderSource final : public FrameSource {
 public:
  ImageFolderSource(std::string dir, std::vector<std::string> files, bool loop)
      : dir_(std::move(dir)), files_(std::move(files)), loop_(loop) {}

  absl::StatusOr<cv::Mat> Next() override {
    while (true) {
      if (next_ >= files_.size()) {
        if (!loop_) return absl::OutOfRangeError(absl::StrCat(dir_, ": all images read"));
        next_ = 0;
      }
      const std::string& path = files_[next_++];
      cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
      if (!image.empty()) return image;
      // An unreadable file is skipped; the folder source goes on.
    }
  }

  std::string description() const override {
    return absl::StrCat("folder ", dir_, " (", files_.size(), " images)");
  }

 private:
  const std::string dir_;
  const std::vector<std::string> files_;
  const bool loop_;
  size_t next_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FrameSource>> OpenFrameSource(const std::string& spec, bool loop) {
  std::error_code error;
  if (std::filesystem::is_directory(spec, error)) {
    auto files = FindImageFiles({spec});
    if (!files.ok()) return files.status();
    if (files->empty()) return absl::NotFoundError(absl::StrCat(spec, ": no images"));
    return std::unique_ptr<FrameSource>(new ImageFolderSource(spec, *std::move(files), loop));
  }
  const bool is_url = absl::StrContains(spec, "://");
  const bool is_device =
      !spec.empty() && std::all_of(spec.begin(), spec.end(), absl::ascii_isdigit);
  if (!is_url && !is_device && !std::filesystem::exists(spec, error)) {
    return absl::NotFoundError(absl::StrCat(spec, ": no such file, device or directory"));
  }
  auto source = std::make_unique<VideoSource>(spec, loop);
  absl::Status opened = source->Open();
  if (!opened.ok()) return opened;
  return std::unique_ptr<FrameSource>(std::move(source));
}

}  // namespace matid
