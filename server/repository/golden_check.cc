#include "server/repository/golden_check.h"

#include <algorithm>
#include <filesystem>
#include <future>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_contents.h"
#include "google/protobuf/util/json_util.h"
#include "matid/v1/model_metadata.pb.h"

namespace matid {
namespace {

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(kGoldenSetFile, ": ", what));
}

// The top label the version gives one encoded image.
absl::StatusOr<std::string> TopLabel(const ServingModel& model, const std::string& encoded,
                                     absl::Duration timeout) {
  auto answer = std::make_shared<std::promise<absl::StatusOr<Classification>>>();
  std::future<absl::StatusOr<Classification>> result = answer->get_future();
  ClassifyCall call{ImageRef::Encoded(encoded), 1, absl::Now() + timeout, nullptr};
  model.classifier().Classify(call, [answer](absl::StatusOr<Classification> classification) {
    answer->set_value(std::move(classification));
  });
  if (result.wait_for(absl::ToChronoSeconds(timeout)) != std::future_status::ready) {
    return absl::DeadlineExceededError("not classified in time");
  }
  absl::StatusOr<Classification> classification = result.get();
  if (!classification.ok()) return classification.status();
  if (classification->top.empty()) return absl::InternalError("no prediction");
  return model.info().labels[classification->top.front().index];
}

}  // namespace

absl::Status CheckGoldenImages(const std::string& version_dir, const ServingModel& model,
                               absl::Duration timeout) {
  const std::string path = absl::StrCat(version_dir, "/", kGoldenSetFile);
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return absl::OkStatus();
  absl::StatusOr<std::string> text = ReadFileContents(path);
  if (!text.ok()) return text.status();
  v1::GoldenSet golden;
  if (auto parsed = google::protobuf::util::JsonStringToMessage(*text, &golden); !parsed.ok()) {
    return Malformed(parsed.ToString());
  }
  if (golden.images_size() == 0) return Malformed("\"images\" is empty");
  if (golden.min_accuracy() < 0 || golden.min_accuracy() > 1) {
    return Malformed("\"min_accuracy\" must be in 0..1");
  }
  const std::vector<std::string>& labels = model.info().labels;
  int passed = 0;
  std::vector<std::string> failures;
  for (const v1::GoldenImage& image : golden.images()) {
    if (image.file().empty() || image.file().find('/') != std::string::npos ||
        image.file()[0] == '.') {
      return Malformed(absl::StrCat("\"", image.file(), "\" is not a file name in the folder"));
    }
    if (std::find(labels.begin(), labels.end(), image.label()) == labels.end()) {
      return Malformed(absl::StrCat("label \"", image.label(), "\" of ", image.file(),
                                    " is not one of the model's labels"));
    }
    absl::StatusOr<std::string> encoded = ReadFileContents(version_dir + "/" + image.file());
    absl::StatusOr<std::string> top =
        encoded.ok() ? TopLabel(model, *encoded, timeout) : encoded.status();
    if (top.ok() && *top == image.label()) {
      ++passed;
    } else {
      failures.push_back(absl::StrCat(image.file(), ": ",
                                      top.ok() ? absl::StrCat(*top, ", expected ", image.label())
                                               : std::string(top.status().message())));
    }
  }
  const double accuracy = static_cast<double>(passed) / golden.images_size();
  if (accuracy + 1e-9 >= golden.min_accuracy()) return absl::OkStatus();
  if (failures.size() > 5) {
    failures.resize(5);
    failures.push_back("...");
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "golden images: ", passed, " of ", golden.images_size(), " right (", accuracy,
      "), below min_accuracy ", golden.min_accuracy(), ": ", absl::StrJoin(failures, "; ")));
}

}  // namespace matid
