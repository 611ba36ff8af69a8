// A bounded folder of the images on which a shadow version and the serving
// version disagree (top-1), kept for labelling: one image file each (the
// request's encoded bytes as sent; for raw-pixel or tensor requests, the
// model's input as a PNG) and a JSON file beside it naming the model, both
// versions, both answers and the time. Files go to DIR/<model>/ and are
// named <model>-v<primary>-<label>-vs-v<shadow>-<label>-<unix ms>-<n>.
// At most max_files disagreements and max_mb megabytes (images and JSON)
// are kept: beyond either, new ones are not saved (counted as folder_full)
// until an operator removes some (the folder is measured again every 10 s
// while full). Writing happens on the folder's own
// thread with a small queue, never on a serving thread; a full queue
// counts writer_busy.
// Thread-safety: Save may be called from any thread; destroy the folder
// from a thread that is not its writer (it joins it after the queue).
#ifndef MATID_SERVER_SHADOW_DISAGREEMENT_FOLDER_H_
#define MATID_SERVER_SHADOW_DISAGREEMENT_FOLDER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/folder_budget.h"
#include "server/backend/model_info.h"

namespace matid {

struct Disagreement {
  std::string model;
  std::string primary_version;
  std::string shadow_version;
  std::string primary_label;
  float primary_score = 0;
  std::string shadow_label;
  float shadow_score = 0;
  absl::Time time;
  std::string encoded;        // the request's image bytes, or empty:
  std::vector<float> tensor;  // the preprocessed input (saved as a PNG)
  InputSpec input;            // how `tensor` was made
  // Called on the writer's thread with the image file's path once saved,
  // or with the reason it was not ("folder_full", "writer_busy",
  // "write_failed"); may be empty.
  std::function<void(const std::string& path, const std::string& not_saved)> done;
};

class DisagreementFolder {
 public:
  static constexpr int kQueue = 16;

  // Creates `dir` if needed and checks a file can be written in it:
  // PERMISSION_DENIED naming --shadow_disagreements_dir otherwise;
  // INVALID_ARGUMENT naming the flag when max_files < 1 or max_mb is not
  // 1 to kMaxFolderMb.
  static absl::StatusOr<std::shared_ptr<DisagreementFolder>> Create(const std::string& dir,
                                                                    int max_files, int64_t max_mb);
  ~DisagreementFolder();

  DisagreementFolder(const DisagreementFolder&) = delete;
  DisagreementFolder& operator=(const DisagreementFolder&) = delete;

  // Queues one disagreement to be written; never blocks.
  void Save(Disagreement disagreement);

  const std::string& dir() const { return dir_; }

 private:
  // One disagreement's two files, made before the budget is asked.
  struct Files {
    std::string image_path;
    std::string image;
    std::string json_path;
    std::string json;
    int64_t bytes() const { return static_cast<int64_t>(image.size() + json.size()); }
  };

  DisagreementFolder(std::string dir, int max_files, int64_t max_bytes);
  void WriterLoop();
  // The image (as sent, or the model input as a PNG) and its JSON, named.
  absl::StatusOr<Files> Render(const Disagreement& d);
  // Writes both files (neither when one fails).
  static absl::Status Write(const Files& files);

  const std::string dir_;
  FolderBudget budget_;   // what dir_ holds (every model's subfolder)
  uint64_t written_ = 0;  // writer thread only

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Disagreement> queue_;  // guarded by mu_
  bool stopping_ = false;           // guarded by mu_
  std::thread writer_;              // joined by the destructor
};

}  // namespace matid

#endif  // MATID_SERVER_SHADOW_DISAGREEMENT_FOLDER_H_
