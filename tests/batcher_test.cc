#include "server/core/batcher.h"

#include <atomic>
#include <future>
#include <map>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/refusal.h"
#include "tests/fake_backend.h"

namespace matid {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr auto kBound = std::chrono::seconds(10);  // generous upper bound for waits

// Collects the outcome of one task and lets a test wait for it.
struct Outcome {
  std::promise<absl::StatusOr<InferenceResult>> promise;
  std::future<absl::StatusOr<InferenceResult>> future = promise.get_future();
};

InferenceTask TaskWithTag(const FakeBackend& backend, int tag, std::shared_ptr<Outcome> outcome) {
  InferenceTask task;
  task.input.assign(backend.info().input.tensor_size(), tag / 255.0f);
  task.done = [outcome](absl::StatusOr<InferenceResult> result) {
    outcome->promise.set_value(std::move(result));
  };
  return task;
}

int ArgMax(const std::vector<float>& scores) {
  return static_cast<int>(std::max_element(scores.begin(), scores.end()) - scores.begin());
}

// Holds the model, submits tags 0..count-1 and returns once tag 0 is running
// alone inside the model and the others are queued behind it.
std::vector<std::shared_ptr<Outcome>> SubmitBehindHeldModel(FakeBackend& backend, Batcher& batcher,
                                                            int count) {
  backend.Hold();
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int tag = 0; tag < count; ++tag) {
    outcomes.push_back(std::make_shared<Outcome>());
    EXPECT_TRUE(batcher.Submit(TaskWithTag(backend, tag, outcomes.back())).ok());
    if (tag == 0) backend.WaitForEntered(1);
  }
  return outcomes;
}

// Waits for every outcome; each must be OK and carry its own tag's answer.
void ExpectEachGotItsOwnResult(const std::vector<std::shared_ptr<Outcome>>& outcomes) {
  for (size_t tag = 0; tag < outcomes.size(); ++tag) {
    ASSERT_EQ(outcomes[tag]->future.wait_for(kBound), std::future_status::ready);
    auto result = outcomes[tag]->future.get();
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(ArgMax(result->scores), static_cast<int>(tag)) << "result went to the wrong request";
  }
}

std::unique_ptr<Batcher> MakeBatcher(FakeBackend* backend, BatcherOptions options) {
  auto batcher = Batcher::Create(options, backend, nullptr);
  EXPECT_TRUE(batcher.ok()) << batcher.status();
  return *std::move(batcher);
}

// Holds the model with one task (tag 0) inside it; returns that task's outcome.
std::shared_ptr<Outcome> HoldTheModelWithOneTask(FakeBackend& backend, Batcher& batcher) {
  backend.Hold();
  auto running = std::make_shared<Outcome>();
  EXPECT_TRUE(batcher.Submit(TaskWithTag(backend, 0, running)).ok());
  backend.WaitForEntered(1);
  return running;
}

TEST(Batcher, RunsALoneRequestAtOnceWhenIdle) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 8});
  auto outcome = std::make_shared<Outcome>();
  ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, 3, outcome)).ok());
  ASSERT_EQ(outcome->future.wait_for(kBound), std::future_status::ready);
  auto result = outcome->future.get();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(ArgMax(result->scores), 3);
  EXPECT_EQ(result->timing.batch_size, 1);
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(1));
}

TEST(Batcher, BatchesRequestsThatWaitedWhileTheModelWasBusy) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 8});
  auto outcomes = SubmitBehindHeldModel(backend, *batcher, 6);
  EXPECT_EQ(batcher->queue_depth(), 5);
  EXPECT_EQ(batcher->in_flight(), 6);
  backend.Release();
  ExpectEachGotItsOwnResult(outcomes);
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(1, 5));
}

TEST(Batcher, NeverExceedsMaxBatchSize) {
  FakeBackend backend(FakeModelInfo(4, 4, /*classes=*/16));  // a class per tag
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 4});
  auto outcomes = SubmitBehindHeldModel(backend, *batcher, 11);
  backend.Release();
  ExpectEachGotItsOwnResult(outcomes);
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(1, 4, 4, 2));
}

TEST(Batcher, MaxBatchSizeOneSwitchesBatchingOff) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 1});
  auto outcomes = SubmitBehindHeldModel(backend, *batcher, 3);
  backend.Release();
  ExpectEachGotItsOwnResult(outcomes);
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(1, 1, 1));
}

TEST(Batcher, WithQueueDelayALoneRequestWaitsForCompany) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 4, .max_queue_delay_us = 300'000});
  auto first = std::make_shared<Outcome>();
  const absl::Time start = absl::Now();
  ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, 1, first)).ok());
  auto second = std::make_shared<Outcome>();
  ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, 2, second)).ok());
  ASSERT_EQ(first->future.wait_for(kBound), std::future_status::ready);
  ASSERT_EQ(second->future.wait_for(kBound), std::future_status::ready);
  // Both went in one batch, and not before the delay ran out.
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(2));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_GE(first->future.get()->timing.queue_wait, absl::Milliseconds(299));
}

TEST(Batcher, WithQueueDelayAFullBatchDoesNotWait) {
  FakeBackend backend;
  auto batcher =
      MakeBatcher(&backend, {.max_batch_size = 2, .max_queue_delay_us = 60'000'000 / 10});
  auto first = std::make_shared<Outcome>();
  auto second = std::make_shared<Outcome>();
  ASSERT_TRUE(batcher
                  ->SubmitAll([&] {
                    std::vector<InferenceTask> tasks;
                    tasks.push_back(TaskWithTag(backend, 1, first));
                    tasks.push_back(TaskWithTag(backend, 2, second));
                    return tasks;
                  }())
                  .ok());
  // The delay is 6 s; a full batch must not sit it out.
  ASSERT_EQ(first->future.wait_for(std::chrono::seconds(3)), std::future_status::ready);
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(2));
}

TEST(Batcher, FullQueueRefusesWithResourceExhausted) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 2, .max_queue_size = 3});
  backend.Hold();
  std::vector<std::shared_ptr<Outcome>> accepted;
  accepted.push_back(std::make_shared<Outcome>());
  ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, 0, accepted.back())).ok());
  backend.WaitForEntered(1);
  for (int tag = 1; tag <= 3; ++tag) {
    accepted.push_back(std::make_shared<Outcome>());
    ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, tag, accepted.back())).ok());
  }
  auto refused = std::make_shared<Outcome>();
  absl::Status status = batcher->Submit(TaskWithTag(backend, 9, refused));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("3 of 3"));
  EXPECT_EQ(RefusalReason(status), "queue_full");
  // CheckRoom tells the same before any work is spent on a task.
  EXPECT_EQ(RefusalReason(batcher->CheckRoom(1)), "queue_full");
  backend.Release();
  for (auto& outcome : accepted) {
    ASSERT_EQ(outcome->future.wait_for(kBound), std::future_status::ready);
    EXPECT_TRUE(outcome->future.get().ok());
  }
  // The refused task's callback is never called.
  EXPECT_EQ(refused->future.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  EXPECT_EQ(backend.images_run(), 4);
  EXPECT_TRUE(batcher->CheckRoom(3).ok());
  EXPECT_EQ(RefusalReason(batcher->CheckRoom(4)), "queue_full");
  batcher->Shutdown();
  EXPECT_EQ(RefusalReason(batcher->CheckRoom(1)), "shutting_down");
}

TEST(Batcher, SubmitAllQueuesAllOrNone) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 8, .max_queue_size = 4});
  auto running = HoldTheModelWithOneTask(backend, *batcher);
  std::vector<InferenceTask> three, two;
  for (int tag = 1; tag <= 3; ++tag)
    three.push_back(TaskWithTag(backend, tag, std::make_shared<Outcome>()));
  for (int tag = 4; tag <= 5; ++tag)
    two.push_back(TaskWithTag(backend, tag, std::make_shared<Outcome>()));
  ASSERT_TRUE(batcher->SubmitAll(std::move(three)).ok());
  EXPECT_EQ(batcher->SubmitAll(std::move(two)).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(batcher->queue_depth(), 3);  // nothing of the refused pair queued
  backend.Release();
  batcher->Shutdown();
  EXPECT_EQ(backend.images_run(), 4);
}

TEST(Batcher, ExpiredRequestIsNotRunAndGetsDeadlineExceeded) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 8});
  auto running = HoldTheModelWithOneTask(backend, *batcher);
  auto expiring = std::make_shared<Outcome>();
  InferenceTask task = TaskWithTag(backend, 1, expiring);
  task.deadline = absl::Now() + absl::Milliseconds(20);
  ASSERT_TRUE(batcher->Submit(std::move(task)).ok());
  absl::SleepFor(absl::Milliseconds(40));  // let the deadline pass while queued
  backend.Release();
  ASSERT_EQ(expiring->future.wait_for(kBound), std::future_status::ready);
  auto result = expiring->future.get();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(result.status().message(), HasSubstr("model was not run"));
  EXPECT_EQ(RefusalReason(result.status()), "deadline_expired");
  EXPECT_EQ(backend.images_run(), 1);  // only the first task ran
}

TEST(Batcher, CancelledRequestIsNotRunAndGetsCancelled) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 8});
  auto running = HoldTheModelWithOneTask(backend, *batcher);
  auto cancelled_flag = std::make_shared<std::atomic<bool>>(false);
  auto cancelled = std::make_shared<Outcome>();
  InferenceTask task = TaskWithTag(backend, 1, cancelled);
  task.is_cancelled = [cancelled_flag] { return cancelled_flag->load(); };
  ASSERT_TRUE(batcher->Submit(std::move(task)).ok());
  auto kept = std::make_shared<Outcome>();
  ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, 2, kept)).ok());
  cancelled_flag->store(true);
  backend.Release();
  ASSERT_EQ(cancelled->future.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(cancelled->future.get().status().code(), absl::StatusCode::kCancelled);
  ASSERT_EQ(kept->future.wait_for(kBound), std::future_status::ready);
  EXPECT_TRUE(kept->future.get().ok());
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(1, 1));
}

// gRPC cancels a call whose deadline passed: the deadline is the reason.
TEST(Batcher, ExpiredAndCancelledRequestCountsAsExpired) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 8});
  auto running = HoldTheModelWithOneTask(backend, *batcher);
  auto both = std::make_shared<Outcome>();
  InferenceTask task = TaskWithTag(backend, 1, both);
  task.deadline = absl::Now() - absl::Milliseconds(1);
  task.is_cancelled = [] { return true; };
  ASSERT_TRUE(batcher->Submit(std::move(task)).ok());
  backend.Release();
  ASSERT_EQ(both->future.wait_for(kBound), std::future_status::ready);
  const absl::Status status = both->future.get().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(RefusalReason(status), "deadline_expired");
}

// The forward-pass time a caller gets back covers the model only: not the
// answers to the batch's expired tasks (here one that takes a second).
TEST(Batcher, ForwardPassTimeExcludesAnsweringExpiredTasks) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 8});
  auto running = HoldTheModelWithOneTask(backend, *batcher);
  InferenceTask slow_to_answer;
  slow_to_answer.input.assign(backend.info().input.tensor_size(), 0.0f);
  slow_to_answer.deadline = absl::Now() + absl::Milliseconds(10);
  slow_to_answer.done = [](absl::StatusOr<InferenceResult> result) {
    EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
    absl::SleepFor(absl::Seconds(1));
  };
  ASSERT_TRUE(batcher->Submit(std::move(slow_to_answer)).ok());
  auto live = std::make_shared<Outcome>();
  ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, 2, live)).ok());
  absl::SleepFor(absl::Milliseconds(30));  // the first one's deadline passes while queued
  backend.Release();
  ASSERT_EQ(live->future.wait_for(kBound), std::future_status::ready);
  auto result = live->future.get();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->timing.batch_size, 1);
  EXPECT_LT(result->timing.inference, absl::Seconds(1));
}

TEST(Batcher, BackendFailureFailsEveryTaskOfThatBatchOnly) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 8});
  backend.set_failure(absl::InternalError("boom"));
  auto failed = std::make_shared<Outcome>();
  ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, 1, failed)).ok());
  ASSERT_EQ(failed->future.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(failed->future.get().status().code(), absl::StatusCode::kInternal);
  backend.set_failure(absl::OkStatus());
  auto fine = std::make_shared<Outcome>();
  ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, 2, fine)).ok());
  ASSERT_EQ(fine->future.wait_for(kBound), std::future_status::ready);
  EXPECT_TRUE(fine->future.get().ok());
}

TEST(Batcher, WrongInputSizeIsRefused) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {});
  InferenceTask task;
  task.input.resize(3);
  task.done = [](absl::StatusOr<InferenceResult>) { ADD_FAILURE() << "must not be called"; };
  EXPECT_EQ(batcher->Submit(std::move(task)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(Batcher, ShutdownRunsEveryQueuedTaskThenRefusesNewOnes) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 2});
  auto outcomes = SubmitBehindHeldModel(backend, *batcher, 5);
  auto shutdown = std::async(std::launch::async, [&] { batcher->Shutdown(); });
  // Shutdown waits for the queued work...
  EXPECT_EQ(shutdown.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  backend.Release();
  // ...and returns promptly once it is done.
  ASSERT_EQ(shutdown.wait_for(kBound), std::future_status::ready);
  for (auto& outcome : outcomes) {  // all answered by the time Shutdown returned
    EXPECT_EQ(outcome->future.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  }
  ExpectEachGotItsOwnResult(outcomes);
  auto late = std::make_shared<Outcome>();
  EXPECT_EQ(batcher->Submit(TaskWithTag(backend, 7, late)).code(), absl::StatusCode::kUnavailable);
}

TEST(Batcher, TwoWorkersRunTwoBatchesAtOnce) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_batch_size = 8, .workers = 2});
  backend.Hold();
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int tag = 0; tag < 2; ++tag) {
    outcomes.push_back(std::make_shared<Outcome>());
    ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, tag, outcomes.back())).ok());
    backend.WaitForEntered(tag + 1);  // the second batch starts while the first is held
  }
  EXPECT_EQ(batcher->in_flight(), 2);
  EXPECT_EQ(batcher->queue_depth(), 0);
  backend.Release();
  ExpectEachGotItsOwnResult(outcomes);
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(1, 1));
  batcher->Shutdown();
  EXPECT_EQ(batcher->in_flight(), 0);
}

// With a queue delay, one worker may wait for company while another takes
// the queue; the waiting one must go back to waiting, not stop.
TEST(Batcher, WithQueueDelayEveryWorkerKeepsServing) {
  FakeBackend backend;
  auto batcher =
      MakeBatcher(&backend, {.max_batch_size = 8, .max_queue_delay_us = 20'000, .workers = 2});
  for (int round = 0; round < 6; ++round) {
    auto outcome = std::make_shared<Outcome>();
    ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, round, outcome)).ok());
    ASSERT_EQ(outcome->future.wait_for(kBound), std::future_status::ready);
    absl::SleepFor(absl::Milliseconds(5));
  }
  // Both workers are still there: two held batches run at once.
  backend.Hold();
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int tag = 0; tag < 2; ++tag) {
    outcomes.push_back(std::make_shared<Outcome>());
    ASSERT_TRUE(batcher->Submit(TaskWithTag(backend, tag, outcomes.back())).ok());
    backend.WaitForEntered(6 + tag + 1);
  }
  backend.Release();
  ExpectEachGotItsOwnResult(outcomes);
}

TEST(Batcher, ShutdownOfAnIdleBatcherIsPromptAndIdempotent) {
  FakeBackend backend;
  auto batcher = MakeBatcher(&backend, {.max_queue_delay_us = 5'000'000});
  auto shutdown = std::async(std::launch::async, [&] {
    batcher->Shutdown();
    batcher->Shutdown();
  });
  ASSERT_EQ(shutdown.wait_for(kBound), std::future_status::ready);
}

TEST(Batcher, ManyThreadsGetEveryResultExactlyOnce) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 150;
  for (int repeat = 0; repeat < 4; ++repeat) {
    FakeBackend backend(FakeModelInfo(2, 2, kThreads * kPerThread));
    auto batcher = MakeBatcher(
        &backend, {.max_batch_size = 8, .max_queue_size = 16, .workers = 1 + repeat % 2});
    std::mutex mu;
    std::map<int, int> completions;  // tag -> times completed
    std::atomic<int> wrong_results{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          const int tag = t * kPerThread + i;
          // Retry refusals (full queue) a bounded number of times.
          for (int attempt = 0; attempt < 100000; ++attempt) {
            InferenceTask task;
            task.input.assign(4, tag / 255.0f);
            task.done = [&, tag](absl::StatusOr<InferenceResult> result) {
              if (!result.ok() || ArgMax(result->scores) != tag) ++wrong_results;
              std::lock_guard<std::mutex> lock(mu);
              ++completions[tag];
            };
            absl::Status status = batcher->Submit(std::move(task));
            if (status.ok()) break;
            ASSERT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
            std::this_thread::yield();
          }
        }
      });
    }
    for (auto& thread : threads) thread.join();
    batcher->Shutdown();
    EXPECT_EQ(wrong_results.load(), 0);
    ASSERT_EQ(completions.size(), static_cast<size_t>(kThreads * kPerThread));
    for (const auto& [tag, count] : completions) {
      ASSERT_EQ(count, 1) << "tag " << tag;
    }
    EXPECT_EQ(backend.images_run(), kThreads * kPerThread);
  }
}

TEST(Batcher, InvalidOptionsAreRefusedAtCreation) {
  FakeBackend backend;
  EXPECT_EQ(Batcher::Create({.max_batch_size = 0}, &backend, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Batcher::Create({.max_queue_delay_us = -1}, &backend, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Batcher::Create({.max_queue_size = 0}, &backend, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Batcher::Create({.workers = 0}, &backend, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace matid
