#include "client/camera/frame_capture.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace matid {
namespace {

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

absl::StatusOr<std::unique_ptr<FrameCapture>> FrameCapture::Create(
    const FrameCaptureOptions& options, FrameCaptureCounters counters) {
  if (absl::Status valid = ValidateFrameCaptureOptions(options); !valid.ok()) return valid;
  FrameFolderOptions folder;
  folder.dir = absl::StrCat(options.dir, "/", options.label);
  folder.max_files = options.max_files;
  folder.max_mb = options.max_mb;
  folder.dir_flag = "--capture_dir";
  folder.what = "captured frame";
  folder.when_full = absl::StrCat(
      folder.dir, " holds ", options.max_files, " frames (--capture_max_files) or ", options.max_mb,
      " MB (--capture_max_mb): frames are counted, not saved, until some are moved out");
  absl::StatusOr<std::unique_ptr<FrameFolder>> made = FrameFolder::Create(
      std::move(folder), {counters.saved, counters.folder_full, counters.write_failures});
  if (!made.ok()) return made.status();
  return std::unique_ptr<FrameCapture>(new FrameCapture(options, counters, *std::move(made)));
}

FrameCapture::FrameCapture(const FrameCaptureOptions& options, FrameCaptureCounters counters,
                           std::unique_ptr<FrameFolder> folder)
    : options_(options),
      counters_(counters),
      folder_(std::move(folder)),
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
    const bool saved = folder_->Save(frame, name);
    lock.lock();
    if (saved) ++saved_;
  }
}

}  // namespace matid
