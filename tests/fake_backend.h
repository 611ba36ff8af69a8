// A ModelBackend for tests: no model, scores that reveal which input they
// came from, a gate to hold batches inside Infer(), and a record of batch
// sizes. Thread-safe.
#ifndef MATID_TESTS_FAKE_BACKEND_H_
#define MATID_TESTS_FAKE_BACKEND_H_

#include <atomic>
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "server/backend/model_backend.h"
#include "tests/hold_gate.h"

namespace matid {

// A gray `width`x`height` model with `classes` labels "c0".."cN", mean 0 and
// std 1: a raw gray image of constant value p becomes p / 255 everywhere.
inline ModelInfo FakeModelInfo(int width = 4, int height = 4, int classes = 10) {
  ModelInfo info;
  info.name = "fake";
  info.version = "1";
  info.variant = "fp32";
  for (int c = 0; c < classes; ++c) info.labels.push_back("c" + std::to_string(c));
  info.input.width = width;
  info.input.height = height;
  info.input.color = ColorMode::kGray;
  info.input.mean = {0.0f};
  info.input.std = {1.0f};
  return info;
}

// The tag of an image: its first value times 255, rounded. Infer() answers
// each image with probability 1 for class (tag mod classes).
inline int TagOf(const float* image) { return static_cast<int>(std::lround(image[0] * 255.0f)); }

class FakeBackend final : public ModelBackend {
 public:
  explicit FakeBackend(ModelInfo info = FakeModelInfo()) : info_(std::move(info)) {}

  const ModelInfo& info() const override { return info_; }

  absl::StatusOr<std::vector<float>> Infer(absl::Span<const float> input, int batch_size) override {
    absl::Duration delay;
    absl::Status failure;
    gate_.Pass();
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch_sizes_.push_back(batch_size);
      delay = delay_;
      failure = failure_;
    }
    if (delay > absl::ZeroDuration()) absl::SleepFor(delay);
    if (!failure.ok()) return failure;
    const size_t classes = info_.labels.size();
    const size_t image_size = info_.input.tensor_size();
    std::vector<float> scores(batch_size * classes, 0.0f);
    for (int i = 0; i < batch_size; ++i) {
      const int tag = TagOf(input.data() + i * image_size);
      const bool differ = disagree_every_ > 0 && tag % disagree_every_ == 0;
      const float top = top_score_;
      for (size_t c = 0; c < classes; ++c) {
        scores[i * classes + c] = classes > 1 ? (1.0f - top) / static_cast<float>(classes - 1) : 0;
      }
      scores[i * classes + ((tag + (differ ? 1 : 0)) % classes)] = top;
    }
    return scores;
  }

  // From now on, images whose tag is a multiple of `n` get class tag + 1
  // (a model that differs from the others on a known subset); 0: never.
  void set_disagree_every(int n) { disagree_every_ = n; }
  // The top class's score (the others share the rest); default 1.
  void set_top_score(float score) { top_score_ = score; }
  // While held, Infer() blocks after counting itself as entered.
  void Hold() { gate_.Close(); }
  void Release() { gate_.Open(); }
  // Blocks until Infer() has been entered `count` times in all.
  void WaitForEntered(int count) { gate_.WaitForArrivals(count); }
  void set_delay(absl::Duration delay) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ = delay;
  }
  void set_failure(absl::Status failure) {
    std::lock_guard<std::mutex> lock(mu_);
    failure_ = std::move(failure);
  }
  std::vector<int> batch_sizes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return batch_sizes_;
  }
  int images_run() const {
    std::lock_guard<std::mutex> lock(mu_);
    int total = 0;
    for (int size : batch_sizes_) total += size;
    return total;
  }

 private:
  const ModelInfo info_;
  HoldGate gate_;  // Infer() passes it on entry
  std::atomic<int> disagree_every_{0};
  std::atomic<float> top_score_{1.0f};
  // std::mutex: visible to ThreadSanitizer (see server/core/batch_scheduler.h).
  mutable std::mutex mu_;
  absl::Duration delay_;  // guarded by mu_, like every field below
  absl::Status failure_;
  std::vector<int> batch_sizes_;
};

}  // namespace matid

#endif  // MATID_TESTS_FAKE_BACKEND_H_
