#include "client/camera/frame_capture.h"

#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/camera/frame_encoding.h"
#include "client/camera/frame_source.h"
#include "common/file_contents.h"
#include "common/log.h"

namespace matid {
namespace {

constexpr int kCaptureJpegQuality = 95;

bool IsPlainFolderName(const std::string& name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

void Add(prometheus::Counter* counter) {
  if (counter != nullptr) counter->Increment();
}

}  // namespace

absl::Status ValidateFrameCaptureOptions(const FrameCaptureOptions& options) {
  if (options.dir.empty() != options.label.empty()) {
    return absl::InvalidArgumentError(
        "--capture_dir and --capture_label go together: the frames go to "
        "--capture_dir/--capture_label/, one class folder");
  }
  if (!options.label.empty() && !IsPlainFolderName(options.label)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--capture_label \"", options.label,
        "\" must be a folder name: letters, digits, '.', '_' or '-', not starting with '.'"));
  }
  if (options.every < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--capture_every is ", options.every, "; must be >= 1"));
  }
  if (options.max_files < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--capture_max_files is ", options.max_files, "; must be >= 1"));
  }
  if (options.max_mb < 1 || options.max_mb > kMaxFolderMb) {
    return absl::InvalidArgumentError(
        absl::StrCat("--capture_max_mb is ", options.max_mb, "; must be 1 to ", kMaxFolderMb));
  }
  if (options.max_queued < 1) return absl::InvalidArgumentError("capture queue must be >= 1");
  return absl::OkStatus();
}

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
        !cv::imencode(".jpg", full, bytes, {cv::IMWRITE_JPEG_QUALITY, kCaptureJpegQuality})) {
      return absl::InternalError("JPEG encoding failed");
    }
    return std::string(bytes.begin(), bytes.end());
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("JPEG encoding failed: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<FrameCapture>> FrameCapture::Create(
    const FrameCaptureOptions& options, FrameCaptureCounters counters) {
  if (absl::Status valid = ValidateFrameCaptureOptions(options); !valid.ok()) return valid;
  absl::Status writable =
      CheckFolderWritable(absl::StrCat(options.dir, "/", options.label), "--capture_dir");
  if (!writable.ok()) return writable;
  return std::unique_ptr<FrameCapture>(new FrameCapture(options, counters));
}

FrameCapture::FrameCapture(const FrameCaptureOptions& options, FrameCaptureCounters counters)
    : options_(options),
      folder_(absl::StrCat(options.dir, "/", options.label)),
      counters_(counters),
      budget_(options.max_files, options.max_mb << 20,
              [folder = folder_] { return MeasureFolder(folder, ".jpg"); }),
      writer_([this] { WriteLoop(); }) {}

FrameCapture::~FrameCapture() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  writer_.join();
}

bool FrameCapture::Wants() { return offered_++ % options_.every == 0; }

void FrameCapture::Offer(FullFrame frame, const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (static_cast<int>(queue_.size()) >= options_.max_queued) {
      Add(counters_.skipped_busy);  // the disk is slower than the line: skip, never wait
      return;
    }
    queue_.emplace_back(std::move(frame), name);
  }
  changed_.notify_all();
}

int64_t FrameCapture::saved() const {
  std::lock_guard<std::mutex> lock(mu_);
  return saved_;
}

void FrameCapture::WriteLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued is written
    auto [frame, name] = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    Write(frame, name);
    lock.lock();
  }
}

void FrameCapture::Write(const FullFrame& frame, const std::string& name) {
  absl::StatusOr<std::string> jpeg = FullResolutionJpeg(frame);
  if (!jpeg.ok()) {
    Add(counters_.write_failures);
    LogError("captured frame not saved: %s", jpeg.status().ToString());
    return;
  }
  const int64_t bytes = static_cast<int64_t>(jpeg->size());
  if (!budget_.TryTake(bytes)) {
    Add(counters_.folder_full);
    if (!folder_full_logged_) {
      LogWarning(
          "%s holds %d frames (--capture_max_files) or %d MB (--capture_max_mb): frames are "
          "counted, not saved, until some are moved out",
          folder_, options_.max_files, options_.max_mb);
      folder_full_logged_ = true;
    }
    return;
  }
  folder_full_logged_ = false;
  // Written beside under a hidden name, then renamed: `prepare` never reads half a photo.
  const std::string path = absl::StrCat(folder_, "/", name, ".jpg");
  const std::string partial = absl::StrCat(folder_, "/.", name, ".jpg.partial");
  absl::Status written = WriteFileContents(partial, *jpeg);
  std::error_code error;
  if (written.ok()) std::filesystem::rename(partial, path, error);
  if (!written.ok() || error) {
    std::filesystem::remove(partial, error);
    budget_.GiveBack(bytes);
    Add(counters_.write_failures);
    LogError("captured frame not saved: %s",
             written.ok() ? absl::StrCat("cannot rename to ", path) : written.ToString());
    return;
  }
  Add(counters_.saved);
  std::lock_guard<std::mutex> lock(mu_);
  ++saved_;
}

}  // namespace matid
