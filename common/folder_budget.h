// How much a folder kept for people (camera inspection frames, server
// disagreeing images) may hold: at most max_files files and max_bytes bytes,
// measured at construction and again, at most every recount_interval, once
// full (an operator may have removed some); new files are refused
// meanwhile, so a forgotten folder cannot fill the disk, whatever the size
// of each file. Time is passed in (`now`), so tests step it.
// Thread-safety: every method may be called from any thread.
#ifndef MATID_COMMON_FOLDER_BUDGET_H_
#define MATID_COMMON_FOLDER_BUDGET_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace matid {

// The largest byte budget a folder flag accepts, in megabytes (a petabyte:
// any real disk); larger values would overflow once in bytes.
inline constexpr int64_t kMaxFolderMb = int64_t{1} << 30;

struct FolderUsage {
  int files = 0;      // the files that count against max_files
  int64_t bytes = 0;  // every file's bytes
};

// What `dir` and its subfolders hold: files whose names end with
// `counted_suffix` (and do not start with '.') count as files; every
// regular file's size counts as bytes. Empty when it cannot be read.
inline FolderUsage MeasureFolder(const std::string& dir, absl::string_view counted_suffix) {
  FolderUsage usage;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (!it->is_regular_file(error)) continue;
    const std::string name = it->path().filename().string();
    const std::uintmax_t size = it->file_size(error);
    if (!error) usage.bytes += static_cast<int64_t>(size);
    error.clear();
    if (name[0] != '.' && absl::EndsWith(name, counted_suffix)) ++usage.files;
  }
  return usage;
}

class FolderBudget {
 public:
  // `measure` returns what the folder holds now; called from the
  // constructor and from TryTake (under the budget's lock).
  FolderBudget(int max_files, int64_t max_bytes, std::function<FolderUsage()> measure,
               absl::Duration recount_interval = absl::Seconds(10),
               std::function<absl::Time()> now = absl::Now)
      : max_files_(max_files),
        max_bytes_(max_bytes),
        recount_interval_(recount_interval),
        measure_(std::move(measure)),
        now_(std::move(now)),
        used_(measure_()) {}

  FolderBudget(const FolderBudget&) = delete;
  FolderBudget& operator=(const FolderBudget&) = delete;

  // True when one more file of `bytes` may be written, which is then
  // counted; false when it would not fit.
  bool TryTake(int64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!Fits(bytes) && now_() >= recount_at_) {
      used_ = measure_();
      recount_at_ = now_() + recount_interval_;
    }
    if (!Fits(bytes)) return false;
    ++used_.files;
    used_.bytes += bytes;
    return true;
  }

  // Undoes a TryTake(bytes) whose file could not be written.
  void GiveBack(int64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (used_.files > 0) --used_.files;
    used_.bytes = used_.bytes > bytes ? used_.bytes - bytes : 0;
  }

 private:
  bool Fits(int64_t bytes) const {  // mu_ must be held
    return used_.files < max_files_ && used_.bytes + bytes <= max_bytes_;
  }

  const int max_files_;
  const int64_t max_bytes_;
  const absl::Duration recount_interval_;
  const std::function<FolderUsage()> measure_;
  const std::function<absl::Time()> now_;
  std::mutex mu_;
  FolderUsage used_;                              // guarded by mu_
  absl::Time recount_at_ = absl::InfinitePast();  // guarded by mu_
};

}  // namespace matid

#endif  // MATID_COMMON_FOLDER_BUDGET_H_
