#include "common/spool.h"

#include <unistd.h>

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::path(::testing::TempDir()) /
            (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
             std::to_string(getpid()) + ".db");  // this process's own file
    std::filesystem::remove(path_);
    std::filesystem::remove(path_.string() + "-wal");
    std::filesystem::remove(path_.string() + "-shm");
  }
  void TearDown() override {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(path_.string() + suffix);
    }
  }
  std::unique_ptr<Spool> Open(int64_t max_bytes = 1 << 20,
                              absl::Duration max_age = absl::Hours(1)) {
    auto spool = Spool::Open({path_.string(), max_bytes, max_age, /*sync_full=*/false});
    EXPECT_TRUE(spool.ok()) << spool.status();
    return *std::move(spool);
  }
  std::vector<std::string> Ids(Spool& spool) {
    std::vector<std::string> ids;
    auto messages = spool.Oldest(1000, 1 << 30);
    EXPECT_TRUE(messages.ok()) << messages.status();
    for (const auto& m : *messages) ids.push_back(m.message_id);
    return ids;
  }
  std::filesystem::path path_;
};

TEST_F(SpoolTest, KeepsMessagesInArrivalOrderAcrossReopen) {
  const absl::Time now = absl::Now();
  {
    auto spool = Open();
    ASSERT_TRUE(*spool->Append("a", "t/a", "payload-a", now));
    ASSERT_TRUE(*spool->Append("b", "t/b", "payload-b", now));
  }
  auto spool = Open();
  auto messages = spool->Oldest(10, 1 << 20);
  ASSERT_TRUE(messages.ok());
  ASSERT_EQ(messages->size(), 2u);
  EXPECT_EQ((*messages)[0].message_id, "a");
  EXPECT_EQ((*messages)[0].topic, "t/a");
  EXPECT_EQ((*messages)[0].payload, "payload-a");
  EXPECT_EQ(absl::ToUnixMillis((*messages)[0].received_at), absl::ToUnixMillis(now));
  EXPECT_EQ((*messages)[1].message_id, "b");
}

TEST_F(SpoolTest, MoveToBackPutsAMessageBehindEveryOtherKeepingItsArrivalTime) {
  const absl::Time early = absl::Now() - absl::Minutes(5);
  auto spool = Open();
  ASSERT_TRUE(*spool->Append("a", "t", "payload-a", early));
  ASSERT_TRUE(*spool->Append("b", "t", "payload-b", absl::Now()));
  const int64_t a = (*spool->Oldest(1, 1 << 20))[0].seq;
  absl::StatusOr<int64_t> moved = spool->MoveToBack(a);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_GT(*moved, a);
  ASSERT_TRUE(*spool->Append("c", "t", "payload-c", absl::Now()));
  EXPECT_EQ(Ids(*spool), (std::vector<std::string>{"b", "a", "c"}))
      << "moved behind those there, and later ones come after it";
  auto messages = spool->Oldest(10, 1 << 20);
  EXPECT_EQ(absl::ToUnixMillis((*messages)[1].received_at), absl::ToUnixMillis(early));
  EXPECT_EQ((*messages)[1].payload, "payload-a");
  EXPECT_EQ(spool->MoveToBack(12345).status().code(), absl::StatusCode::kNotFound);
  // Survives a reopen with the new order.
  spool.reset();
  spool = Open();
  EXPECT_EQ(Ids(*spool), (std::vector<std::string>{"b", "a", "c"}));
}

TEST_F(SpoolTest, StoresADuplicateMessageIdOnce) {
  auto spool = Open();
  EXPECT_TRUE(*spool->Append("a", "t", "1", absl::Now()));
  EXPECT_FALSE(*spool->Append("a", "t", "1", absl::Now()));
  EXPECT_EQ(spool->Stats()->messages, 1);
}

TEST_F(SpoolTest, OldestRespectsCountAndBytesButReturnsAtLeastOne) {
  auto spool = Open();
  for (const char* id : {"a", "b", "c", "d"}) {
    ASSERT_TRUE(spool->Append(id, "t", std::string(100, 'x'), absl::Now()).ok());
  }
  EXPECT_EQ(spool->Oldest(3, 1 << 20)->size(), 3u);
  EXPECT_EQ(spool->Oldest(10, 250)->size(), 2u);
  EXPECT_EQ(spool->Oldest(10, 200)->size(), 1u);  // joined: 100 + a newline + 100
  EXPECT_EQ(spool->Oldest(10, 10)->size(), 1u);   // one message even if over the byte cap
}

TEST_F(SpoolTest, RemoveDeletesOnlyTheGivenMessages) {
  auto spool = Open();
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(spool->Append(id, "t", "p", absl::Now()).ok());
  auto messages = *spool->Oldest(2, 1 << 20);
  ASSERT_TRUE(spool->Remove({messages[0].seq, messages[1].seq}).ok());
  EXPECT_THAT(Ids(*spool), ElementsAre("c"));
}

TEST_F(SpoolTest, SizeLimitDropsTheOldestAndCountsThemForever) {
  {
    auto spool = Open(/*max_bytes=*/250);
    for (const char* id : {"a", "b", "c", "d"}) {
      ASSERT_TRUE(spool->Append(id, "t", std::string(100, 'x'), absl::Now()).ok());
    }
    EXPECT_EQ(*spool->EnforceLimits(absl::Now()), 2);
    EXPECT_THAT(Ids(*spool), ElementsAre("c", "d"));
  }
  auto reopened = Open(/*max_bytes=*/250);
  EXPECT_EQ(reopened->Stats()->dropped_total, 2);
}

TEST_F(SpoolTest, AgeLimitDropsOldMessages) {
  auto spool = Open(1 << 20, /*max_age=*/absl::Minutes(10));
  const absl::Time now = absl::Now();
  ASSERT_TRUE(spool->Append("old", "t", "p", now - absl::Minutes(11)).ok());
  ASSERT_TRUE(spool->Append("new", "t", "p", now - absl::Minutes(9)).ok());
  EXPECT_EQ(*spool->EnforceLimits(now), 1);
  EXPECT_THAT(Ids(*spool), ElementsAre("new"));
}

TEST_F(SpoolTest, StatsCountMessagesBytesAndOldest) {
  auto spool = Open();
  EXPECT_EQ(spool->Stats()->messages, 0);
  EXPECT_EQ(spool->Stats()->oldest, absl::InfiniteFuture());
  const absl::Time first = absl::FromUnixMillis(1'700'000'000'000);
  ASSERT_TRUE(spool->Append("a", "t", "12345", first).ok());
  ASSERT_TRUE(spool->Append("b", "t", "123", first + absl::Seconds(1)).ok());
  auto stats = spool->Stats();
  EXPECT_EQ(stats->messages, 2);
  EXPECT_EQ(stats->bytes, 8);
  EXPECT_EQ(stats->oldest, first);
}

TEST_F(SpoolTest, DeadLettersKeepPayloadAndReason) {
  auto spool = Open();
  ASSERT_TRUE(spool->DeadLetter("matid/x/results", "{oops", "not valid JSON", absl::Now()).ok());
  EXPECT_THAT(*spool->DeadLetters(10), ElementsAre(Pair("not valid JSON", "{oops")));
  EXPECT_EQ(spool->Stats()->dead_letters, 1);
  EXPECT_EQ(spool->Stats()->messages, 0);
}

TEST_F(SpoolTest, ALongDeadLetterKeepsItsStartAndSaysHowLongItWas) {
  auto spool = Open();
  const std::string payload(20000, 'x');
  ASSERT_TRUE(spool->DeadLetter("matid/x/results", payload, "not valid JSON", absl::Now()).ok());
  auto letters = *spool->DeadLetters(10);
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].second, payload.substr(0, Spool::kDeadLetterPayloadBytes));
  EXPECT_THAT(letters[0].first, ::testing::StartsWith("not valid JSON (topic of 15 bytes, "
                                                      "payload of 20000 bytes; the first 15 and "
                                                      "4096 kept)"));
}

TEST_F(SpoolTest, DeadLettersKeepTheNewestWithinAnEighthOfTheBudgetAndMessagesTheRest) {
  const int64_t budget = 80000;  // dead letters: 10,000 bytes, two of about 4.1 KB
  auto spool = Open(budget);
  for (int n = 0; n < 5; ++n) {
    ASSERT_TRUE(
        spool->DeadLetter("t", std::to_string(n) + std::string(5000, 'x'), "bad", absl::Now())
            .ok());
  }
  auto letters = *spool->DeadLetters(10);
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_EQ(letters[0].second[0], '3');
  EXPECT_EQ(letters[1].second[0], '4');
  EXPECT_EQ(spool->Stats()->dead_letters_dropped, 3);
  // Messages get the budget less what the dead letters take (2 x ~4.2 KB):
  // 8 x 9,000 = 72,000 would fit in 80,000 but not in 80,000 - 8,300.
  const absl::Time now = absl::Now();
  for (int n = 0; n < 8; ++n) {
    ASSERT_TRUE(*spool->Append(std::to_string(n), "t", std::string(9000, 'm'), now));
  }
  EXPECT_EQ(*spool->EnforceLimits(now), 1);
  EXPECT_THAT(Ids(*spool), ElementsAre("1", "2", "3", "4", "5", "6", "7"));
}

TEST_F(SpoolTest, UnopenablePathIsAClearError) {
  auto spool = Spool::Open({"/nonexistent/dir/spool.db"});
  EXPECT_EQ(spool.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(spool.status().message()), ::testing::HasSubstr("/nonexistent/dir"));
}

}  // namespace
}  // namespace matid
