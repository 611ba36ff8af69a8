#include "client/camera/frame_source.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_contents.h"
#include "common/image_files.h"
#include "common/image_header.h"
#include "common/log.h"
#include "common/model_input_fit.h"

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
        // MJPEG: take the JPEG packets as they are and decode them here, at
        // the scale the caller wants (FFmpeg would decode every frame whole).
        const int fourcc = static_cast<int>(capture_.get(cv::CAP_PROP_FOURCC));
        if (capture_.isOpened() && fourcc == cv::VideoWriter::fourcc('M', 'J', 'P', 'G')) {
          packets_ = capture_.set(cv::CAP_PROP_FORMAT, -1);
        }
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

  absl::StatusOr<Frame> Next(const DecodeScale& scale_for) override {
    cv::Mat read;
    try {
      if (!capture_.read(read) || read.empty()) {
        if (!(loop_ && capture_.set(cv::CAP_PROP_POS_FRAMES, 0) && capture_.read(read) &&
              !read.empty())) {
          return absl::OutOfRangeError(absl::StrCat(spec_, " ended"));
        }
      }
    } catch (const cv::Exception& e) {
      return absl::UnavailableError(absl::StrCat("reading ", spec_, ": ", e.what()));
    }
    if (!packets_) return Frame{read, 1, ""};
    absl::StatusOr<Frame> frame = DecodeJpegFrame(
        std::string(reinterpret_cast<const char*>(read.data), read.total()), scale_for);
    if (frame.ok()) return frame;
    // Packets this process cannot decode alone (MJPEG without Huffman
    // tables, ...): let FFmpeg decode the stream from here on.
    LogInfo("%s: MJPEG packets not decodable as JPEG; decoding whole frames with FFmpeg", spec_);
    const double position = capture_.get(cv::CAP_PROP_POS_FRAMES);
    packets_ = false;
    capture_.open(spec_);
    if (position > 0) capture_.set(cv::CAP_PROP_POS_FRAMES, position - 1);
    return Next(scale_for);
  }

  std::string description() const override { return absl::StrCat("video ", spec_); }

 private:
  const std::string spec_;
  const bool loop_;
  cv::VideoCapture capture_;
  bool packets_ = false;  // reading MJPEG packets, decoded here
};

class ImageFolderSource final : public FrameSource {
 public:
  ImageFolderSource(std::string dir, std::vector<std::string> files, bool loop)
      : dir_(std::move(dir)), files_(std::move(files)), loop_(loop) {}

  absl::StatusOr<Frame> Next(const DecodeScale& scale_for) override {
    while (true) {
      if (next_ >= files_.size()) {
        if (!loop_) return absl::OutOfRangeError(absl::StrCat(dir_, ": all images read"));
        next_ = 0;
      }
      const std::string& path = files_[next_++];
      absl::StatusOr<std::string> bytes = ReadFileContents(path);
      if (bytes.ok()) {
        auto header = ReadImageDimensions(*bytes);
        if (header && header->format == "jpeg") {
          absl::StatusOr<Frame> frame = DecodeJpegFrame(*std::move(bytes), scale_for);
          if (frame.ok()) return frame;
        } else {
          const cv::Mat buffer(1, static_cast<int>(bytes->size()), CV_8UC1, bytes->data());
          cv::Mat image = cv::imdecode(buffer, cv::IMREAD_COLOR);
          if (!image.empty()) return Frame{image, 1, ""};
        }
      }
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

absl::StatusOr<Frame> DecodeJpegFrame(std::string jpeg, const DecodeScale& scale_for) {
  auto header = ReadImageDimensions(jpeg);
  if (!header || header->format != "jpeg") {
    return absl::InvalidArgumentError("not a JPEG");
  }
  const int scale =
      scale_for ? scale_for(static_cast<int>(header->width), static_cast<int>(header->height)) : 1;
  try {
    const cv::Mat buffer(1, static_cast<int>(jpeg.size()), CV_8UC1, jpeg.data());
    cv::Mat pixels = cv::imdecode(buffer, ImreadFlags(/*gray=*/false, scale));
    if (pixels.empty()) return absl::InvalidArgumentError("JPEG not decodable");
    return Frame{std::move(pixels), scale, std::move(jpeg)};
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("JPEG not decodable: ", e.what()));
  }
}

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
