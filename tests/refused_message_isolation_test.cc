// Unit tests of the forwarder's rule for a message the cloud keeps refusing
// (bridge/refused_message_isolation.h), stepped publish by publish.
#include "bridge/refused_message_isolation.h"

#include "gtest/gtest.h"

namespace matid {
namespace {

using Next = RefusedMessageIsolation::Next;

TEST(RefusedMessageIsolation, TakesWholeBatchesWhileEverythingIsDelivered) {
  RefusedMessageIsolation isolation;
  EXPECT_EQ(isolation.Take({1, 2, 3}), 3u);
  isolation.OnDelivered({1, 2, 3});
  EXPECT_EQ(isolation.Take({4, 5}), 2u);
  EXPECT_EQ(isolation.Take({}), 0u);
}

TEST(RefusedMessageIsolation, MessagesBehindARefusedOneGoAfterTwoFailedPublishes) {
  RefusedMessageIsolation isolation;
  // 1 is refused whenever it is sent; 2 and 3 are fine.
  ASSERT_EQ(isolation.Take({1, 2, 3}), 3u);
  EXPECT_EQ(isolation.OnNotAcknowledged(1, 3), Next::kRetry);           // failure 1: the batch
  ASSERT_EQ(isolation.Take({1, 2, 3}), 1u);                             // 1 alone
  EXPECT_EQ(isolation.OnNotAcknowledged(1, 1), Next::kMoveHeadToBack);  // failure 2
  isolation.OnMovedToBack(4);  // the spool gave it sequence 4
  EXPECT_EQ(isolation.Take({2, 3, 4}), 2u) << "the batch stops before the suspect";
  isolation.OnDelivered({2, 3});
  EXPECT_EQ(isolation.Take({4, 5, 6}), 1u) << "the suspect is tried alone";
  EXPECT_EQ(isolation.OnNotAcknowledged(4, 1), Next::kMoveHeadToBack);
  isolation.OnMovedToBack(7);
  EXPECT_EQ(isolation.Take({5, 6, 7}), 2u);
}

TEST(RefusedMessageIsolation, ASuspectDeliveredAtLastIsForgotten) {
  RefusedMessageIsolation isolation;
  EXPECT_EQ(isolation.OnNotAcknowledged(1, 1), Next::kMoveHeadToBack);  // a lost connection
  isolation.OnMovedToBack(3);
  EXPECT_EQ(isolation.Take({2, 3}), 1u);
  isolation.OnDelivered({2});
  EXPECT_EQ(isolation.Take({3}), 1u);
  isolation.OnDelivered({3});
  EXPECT_EQ(isolation.Take({4, 5, 6}), 3u) << "whole batches again";
}

TEST(RefusedMessageIsolation, ABatchThatFailsOnceThenGoesAloneAndIsDeliveredRestoresBatches) {
  RefusedMessageIsolation isolation;
  EXPECT_EQ(isolation.OnNotAcknowledged(1, 5), Next::kRetry);
  EXPECT_EQ(isolation.Take({1, 2, 3, 4, 5}), 1u);
  isolation.OnDelivered({1});
  EXPECT_EQ(isolation.Take({2, 3, 4, 5}), 4u);
}

TEST(RefusedMessageIsolation, ASuspectBeyondTheWindowDoesNotCutTheBatch) {
  RefusedMessageIsolation isolation;
  EXPECT_EQ(isolation.OnNotAcknowledged(1, 1), Next::kMoveHeadToBack);
  isolation.OnMovedToBack(100);
  EXPECT_EQ(isolation.Take({2, 3, 4}), 3u);
}

}  // namespace
}  // namespace matid
