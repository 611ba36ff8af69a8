// How many files a folder kept for people (camera inspection frames, server
// disagreeing images) may hold: at most max_files, counted at construction
// and again, at most every recount_interval, once full (an operator may have
// removed some); new files are refused meanwhile, so a forgotten folder
// cannot fill the disk. Thread-safety: every method may be called from any thread.
#ifndef MATID_COMMON_FOLDER_BUDGET_H_
#define MATID_COMMON_FOLDER_BUDGET_H_

#include <functional>
#include <mutex>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace matid {

class FolderBudget {
 public:
  // `count_files` returns the files in the folder now; called from the
  // constructor and from TryTake (under the budget's lock).
  FolderBudget(int max_files, std::function<int()> count_files,
               absl::Duration recount_interval = absl::Seconds(10))
      : max_files_(max_files),
        recount_interval_(recount_interval),
        count_files_(std::move(count_files)),
        files_(count_files_()) {}

  FolderBudget(const FolderBudget&) = delete;
  FolderBudget& operator=(const FolderBudget&) = delete;

  // True when one more file may be written, which is then counted; false
  // when the folder is full.
  bool TryTake() {
    std::lock_guard<std::mutex> lock(mu_);
    if (files_ >= max_files_ && absl::Now() >= recount_at_) {
      files_ = count_files_();
      recount_at_ = absl::Now() + recount_interval_;
    }
    if (files_ >= max_files_) return false;
    ++files_;
    return true;
  }

  // Undoes a TryTake whose file could not be written.
  void GiveBack() {
    std::lock_guard<std::mutex> lock(mu_);
    if (files_ > 0) --files_;
  }

 private:
  const int max_files_;
  const absl::Duration recount_interval_;
  const std::function<int()> count_files_;
  std::mutex mu_;
  int files_;                                     // guarded by mu_
  absl::Time recount_at_ = absl::InfinitePast();  // guarded by mu_
};

}  // namespace matid

#endif  // MATID_COMMON_FOLDER_BUDGET_H_
