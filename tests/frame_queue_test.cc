// The camera's frame queue and result message, without threads or a
// server: the oldest pending frame goes when the queue is full, frames put
// back keep their order ahead of newer ones, an answer is taken once, and
// an answer becomes the message plant software reads.
#include "client/camera/frame_queue.h"

#include "client/camera/frame_result_message.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

PendingFrame Frame(uint64_t seq) {
  PendingFrame frame;
  frame.seq = seq;
  return frame;
}

std::vector<uint64_t> SendAll(FrameQueue& queue) {
  std::vector<uint64_t> sent;
  while (queue.has_pending()) sent.push_back(queue.Send().seq);
  return sent;
}

TEST(FrameQueue, AFullQueueDropsTheOldestPendingFrame) {
  FrameQueue queue(2);
  EXPECT_EQ(queue.Push(Frame(1)), 0);
  EXPECT_EQ(queue.Push(Frame(2)), 0);
  EXPECT_EQ(queue.Push(Frame(3)), 1);  // 1 goes: capture never waits
  EXPECT_THAT(SendAll(queue), ::testing::ElementsAre(2, 3));
  EXPECT_EQ(queue.in_flight(), 2);
}

TEST(FrameQueue, FramesPutBackGoFirstInTheirOrderAndAnAnswerIsTakenOnce) {
  FrameQueue queue(3);
  queue.Push(Frame(1));
  queue.Push(Frame(2));
  queue.Send();
  queue.Send();
  queue.Push(Frame(3));
  ASSERT_TRUE(queue.Answer(1).has_value());
  EXPECT_FALSE(queue.Answer(1).has_value());  // answered already
  // The stream ended with 2 unanswered: it goes back ahead of 3.
  EXPECT_EQ(queue.Requeue(queue.TakeInFlight()), 0);
  EXPECT_EQ(queue.in_flight(), 0);
  queue.Push(Frame(4));
  EXPECT_EQ(queue.Push(Frame(5)), 1);  // past 3 pending: the oldest (2) goes
  EXPECT_THAT(SendAll(queue), ::testing::ElementsAre(3, 4, 5));
  for (uint64_t seq : {3, 4, 5}) queue.Answer(seq);
  EXPECT_TRUE(queue.empty());
}

TEST(FrameResultMessage, CarriesTheModelThePredictionsAndTheInspectionFlag) {
  v1::FrameResult result;
  result.set_seq(7);
  result.mutable_model()->set_name("parts");
  result.mutable_model()->set_version("3");
  auto* top = result.add_predictions();
  top->set_label("washer");
  top->set_score(0.55f);
  result.add_predictions()->set_label("hex_nut");
  const absl::Time captured = absl::FromUnixMillis(1767225600123);
  const ResultMessage message = FrameResultMessage(result, {"cam-2", "boot", captured},
                                                   captured + absl::Milliseconds(40), 0.6);
  EXPECT_EQ(message.camera_id, "cam-2");
  EXPECT_EQ(message.frame_seq, 7u);
  EXPECT_EQ(message.message_id, MessageId("cam-2", "boot", 7));
  EXPECT_EQ(message.timestamp, "2026-01-01T00:00:00.123Z");
  EXPECT_EQ(message.model_version, "3");
  EXPECT_EQ(message.top_label, "washer");
  EXPECT_TRUE(message.needs_inspection);  // 0.55 < 0.6
  EXPECT_DOUBLE_EQ(message.latency_ms, 40);
  EXPECT_FALSE(
      FrameResultMessage(result, {"cam-2", "boot", captured}, captured, 0.5).needs_inspection);
}

}  // namespace
}  // namespace matid
