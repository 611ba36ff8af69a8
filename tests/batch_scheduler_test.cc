// BatchScheduler on its own: batches are formed and handed to a callback,
// with no model behind it.
#include "server/core/batch_scheduler.h"

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/refusal.h"
#include "tests/hold_gate.h"

namespace matid {
namespace {

using ::testing::ElementsAre;

// A batch callback that records the tags (task.input[0]) of each batch and
// can hold the worker inside a batch until released.
class RecordingCallback {
 public:
  void Run(std::vector<QueuedTask> batch) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<int> tags;
      for (const QueuedTask& queued : batch) tags.push_back(static_cast<int>(queued.task.input[0]));
      batches_.push_back(tags);
    }
    gate_.Pass();
  }
  void Hold() { gate_.Close(); }
  void Release() { gate_.Open(); }
  void WaitForBatches(int count) { gate_.WaitForArrivals(count); }
  bool WaitForBatchesFor(int count, std::chrono::milliseconds timeout) {
    return gate_.WaitForArrivalsFor(count, timeout);
  }
  std::vector<std::vector<int>> batches() const {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }

 private:
  HoldGate gate_;
  mutable std::mutex mu_;
  std::vector<std::vector<int>> batches_;  // guarded by mu_
};

std::vector<InferenceTask> Tasks(std::initializer_list<int> tags) {
  std::vector<InferenceTask> tasks;
  for (int tag : tags) {
    InferenceTask task;
    task.input = {static_cast<float>(tag)};
    tasks.push_back(std::move(task));
  }
  return tasks;
}

std::unique_ptr<BatchScheduler> MakeScheduler(RecordingCallback* callback, BatcherOptions options,
                                              std::vector<int>* depths = nullptr) {
  BatchScheduler::QueueDepthCallback depth_changed;
  if (depths != nullptr) depth_changed = [depths](int depth) { depths->push_back(depth); };
  auto scheduler = BatchScheduler::Create(
      options, [callback](std::vector<QueuedTask> batch) { callback->Run(std::move(batch)); },
      std::move(depth_changed));
  EXPECT_TRUE(scheduler.ok()) << scheduler.status();
  return *std::move(scheduler);
}

TEST(BatchScheduler, HandsFormedBatchesOldestFirstToTheCallback) {
  RecordingCallback callback;
  auto scheduler = MakeScheduler(&callback, {.max_batch_size = 3});
  callback.Hold();
  ASSERT_TRUE(scheduler->Enqueue(Tasks({0})).ok());
  callback.WaitForBatches(1);  // the worker is inside batch {0}
  ASSERT_TRUE(scheduler->Enqueue(Tasks({1, 2, 3, 4})).ok());
  EXPECT_EQ(scheduler->queue_depth(), 4);
  EXPECT_EQ(scheduler->in_flight(), 5);
  callback.Release();
  scheduler->Shutdown();
  EXPECT_THAT(callback.batches(),
              ElementsAre(ElementsAre(0), ElementsAre(1, 2, 3), ElementsAre(4)));
  EXPECT_EQ(scheduler->in_flight(), 0);
}

// Until every worker has finished its batch and waits for work: running_ is
// lowered in the same critical section in which a worker starts waiting, so
// in_flight() == 0 means all of them are asleep on the condition variable.
bool AllWorkersWaiting(const BatchScheduler& scheduler) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (scheduler.in_flight() != 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// One Enqueue of more images than a batch holds wakes enough workers for
// them (it used to wake one: the second worker slept until the next request).
TEST(BatchScheduler, ARequestOfSeveralBatchesReachesEveryIdleWorker) {
  RecordingCallback callback;
  auto scheduler = MakeScheduler(&callback, {.max_batch_size = 2, .workers = 2});
  callback.Hold();  // both workers take a batch, so both have started
  ASSERT_TRUE(scheduler->Enqueue(Tasks({0})).ok());
  callback.WaitForBatches(1);
  ASSERT_TRUE(scheduler->Enqueue(Tasks({1})).ok());
  callback.WaitForBatches(2);
  callback.Release();
  ASSERT_TRUE(AllWorkersWaiting(*scheduler));

  callback.Hold();
  ASSERT_TRUE(scheduler->Enqueue(Tasks({2, 3, 4, 5})).ok());
  EXPECT_TRUE(callback.WaitForBatchesFor(4, std::chrono::seconds(30)))
      << "only one worker woke for a request of two batches";
  EXPECT_EQ(scheduler->queue_depth(), 0);
  callback.Release();
  scheduler->Shutdown();
  EXPECT_THAT(callback.batches(),
              ::testing::UnorderedElementsAre(ElementsAre(0), ElementsAre(1), ElementsAre(2, 3),
                                              ElementsAre(4, 5)));
}

TEST(BatchScheduler, RefusesWhatDoesNotFitAndQueuesNothingOfIt) {
  RecordingCallback callback;
  std::vector<int> depths;
  auto scheduler = MakeScheduler(&callback, {.max_batch_size = 8, .max_queue_size = 3}, &depths);
  callback.Hold();
  ASSERT_TRUE(scheduler->Enqueue(Tasks({0})).ok());
  callback.WaitForBatches(1);
  ASSERT_TRUE(scheduler->Enqueue(Tasks({1, 2})).ok());
  const absl::Status refused = scheduler->Enqueue(Tasks({3, 4}));
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RefusalReason(refused), "queue_full");
  EXPECT_EQ(scheduler->CheckRoom(1).code(), absl::StatusCode::kOk);
  EXPECT_EQ(scheduler->CheckRoom(2).code(), absl::StatusCode::kResourceExhausted);
  callback.Release();
  scheduler->Shutdown();
  EXPECT_THAT(callback.batches(), ElementsAre(ElementsAre(0), ElementsAre(1, 2)));
  // Told of every change: 1 queued, taken, 2 queued, taken.
  EXPECT_THAT(depths, ElementsAre(1, 0, 2, 0));
  const absl::Status closed = scheduler->Enqueue(Tasks({5}));
  EXPECT_EQ(closed.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(RefusalReason(closed), "shutting_down");
}

TEST(BatchScheduler, CreateRefusesBadOptionsAndAMissingCallback) {
  EXPECT_EQ(
      BatchScheduler::Create({.max_batch_size = 0}, [](std::vector<QueuedTask>) {}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BatchScheduler::Create({}, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace matid
