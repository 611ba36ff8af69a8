#include "server/shadow/disagreement_folder.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_contents.h"
#include "common/image_header.h"
#include "common/log.h"
#include "common/result_message.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"

namespace matid {
namespace {

namespace fs = std::filesystem;

// A label or model name as a file-name part: letters, digits, '.', '_'
// and '-' kept, anything else (Fashion-MNIST's "T-shirt/top") as '_'.
std::string FileNamePart(const std::string& text) {
  std::string part = text.empty() ? "_" : text;
  for (char& c : part) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  }
  return part;
}

// The model's input as 8-bit pixels (BGR for OpenCV), undoing the
// normalization; PNG bytes.
absl::StatusOr<std::string> TensorPng(const std::vector<float>& tensor, const InputSpec& input) {
  const int channels = input.channels();
  if (tensor.size() != input.tensor_size() || static_cast<int>(input.mean.size()) != channels ||
      static_cast<int>(input.std.size()) != channels) {
    return absl::InternalError("the input tensor does not match its description");
  }
  try {
    const int plane = input.width * input.height;
    cv::Mat image(input.height, input.width, channels == 1 ? CV_8UC1 : CV_8UC3);
    for (int y = 0; y < input.height; ++y) {
      uint8_t* row = image.ptr<uint8_t>(y);
      for (int x = 0; x < input.width; ++x) {
        for (int c = 0; c < channels; ++c) {
          const float value =
              tensor[c * plane + y * input.width + x] * input.std[c] + input.mean[c];
          const int out_channel = channels == 1 ? 0 : 2 - c;  // RGB -> BGR
          row[x * channels + out_channel] =
              static_cast<uint8_t>(std::clamp(value * 255.0f + 0.5f, 0.0f, 255.0f));
        }
      }
    }
    std::vector<uint8_t> png;
    if (!cv::imencode(".png", image, png)) return absl::InternalError("PNG encoding failed");
    return std::string(png.begin(), png.end());
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("PNG encoding failed: ", e.what()));
  }
}

std::string Extension(const std::string& encoded) {
  const std::optional<ImageDimensions> header = ReadImageDimensions(encoded);
  if (!header.has_value()) return "img";  // another format: its bytes as sent
  return header->format == "jpeg" ? "jpg" : std::string(header->format);
}

}  // namespace

absl::StatusOr<std::shared_ptr<DisagreementFolder>> DisagreementFolder::Create(
    const std::string& dir, int max_files, int64_t max_mb) {
  if (max_files < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shadow_disagreements_max_files is ", max_files, "; must be >= 1"));
  }
  if (max_mb < 1 || max_mb > kMaxFolderMb) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shadow_disagreements_max_mb is ", max_mb, "; must be 1 to ", kMaxFolderMb));
  }
  absl::Status writable = CheckFolderWritable(dir, "--shadow_disagreements_dir");
  if (!writable.ok()) return writable;
  std::shared_ptr<DisagreementFolder> folder(new DisagreementFolder(dir, max_files, max_mb << 20));
  folder->writer_ = std::thread([f = folder.get()] { f->WriterLoop(); });
  return folder;
}

DisagreementFolder::DisagreementFolder(std::string dir, int max_files, int64_t max_bytes)
    : dir_(std::move(dir)),
      // One JSON file per saved disagreement: those are what max_files counts.
      budget_(max_files, max_bytes, [this] { return MeasureFolder(dir_, ".json"); }) {}

DisagreementFolder::~DisagreementFolder() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void DisagreementFolder::Save(Disagreement disagreement) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (static_cast<int>(queue_.size()) < kQueue && !stopping_) {
      queue_.push_back(std::move(disagreement));
      wake_.notify_one();
      return;
    }
  }
  if (disagreement.done) disagreement.done("", "writer_busy");
}

void DisagreementFolder::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued is written
    Disagreement next = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    std::string path;
    std::string not_saved;
    absl::StatusOr<Files> files = Render(next);
    absl::Status written = files.status();
    if (files.ok() && !budget_.TryTake(files->bytes())) {
      not_saved = "folder_full";
    } else if (files.ok() && (written = Write(*files)).ok()) {
      path = files->image_path;
    } else {
      if (files.ok()) budget_.GiveBack(files->bytes());
      not_saved = "write_failed";
      LogError("disagreement not saved: %s", written.ToString());
    }
    if (next.done) next.done(path, not_saved);
    lock.lock();
  }
}

absl::StatusOr<DisagreementFolder::Files> DisagreementFolder::Render(const Disagreement& d) {
  const std::string folder = absl::StrCat(dir_, "/", FileNamePart(d.model));
  Files files;
  files.image = d.encoded;
  std::string extension = Extension(d.encoded);
  if (files.image.empty()) {
    absl::StatusOr<std::string> png = TensorPng(d.tensor, d.input);
    if (!png.ok()) return png.status();
    files.image = *std::move(png);
    extension = "png";
  }
  const std::string stem =
      absl::StrCat(folder, "/", FileNamePart(d.model), "-v", FileNamePart(d.primary_version), "-",
                   FileNamePart(d.primary_label), "-vs-v", FileNamePart(d.shadow_version), "-",
                   FileNamePart(d.shadow_label), "-", absl::ToUnixMillis(d.time), "-", ++written_);
  files.image_path = absl::StrCat(stem, ".", extension);
  files.json_path = stem + ".json";
  const nlohmann::json json = {
      {"image", fs::path(files.image_path).filename().string()},
      {"model", d.model},
      {"time", Rfc3339Millis(d.time)},
      {"primary",
       {{"version", d.primary_version}, {"label", d.primary_label}, {"score", d.primary_score}}},
      {"shadow",
       {{"version", d.shadow_version}, {"label", d.shadow_label}, {"score", d.shadow_score}}},
      {"input", d.encoded.empty() ? "model input (preprocessed)" : "request image"},
  };
  files.json = json.dump(1) + "\n";
  return files;
}

absl::Status DisagreementFolder::Write(const Files& files) {
  const fs::path folder = fs::path(files.image_path).parent_path();
  std::error_code error;
  fs::create_directories(folder, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create ", folder.string(), ": ", error.message()));
  }
  if (absl::Status saved = WriteFileContents(files.image_path, files.image); !saved.ok()) {
    return saved;
  }
  if (absl::Status saved = WriteFileContents(files.json_path, files.json); !saved.ok()) {
    fs::remove(files.image_path, error);
    return saved;
  }
  return absl::OkStatus();
}

}  // namespace matid
