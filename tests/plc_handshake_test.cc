// The PLC handshake and the recipe decisions, stepped without threads,
// sockets or a clock: triggers, busy answers, results written at once,
// acknowledgement, heartbeat, and OK/NG by recipe.
#include <gtest/gtest.h>

#include "client/plc/handshake.h"
#include "client/plc/recipes.h"

namespace matid::plc {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

uint16_t At(const Handshake& handshake, int address) { return handshake.registers()[address]; }

Outcome Ok(uint16_t class_index) {
  Outcome outcome;
  outcome.state = ResultState::kOk;
  outcome.class_index = class_index;
  outcome.score_x1000 = 975;
  outcome.model_version = 3;
  return outcome;
}

Handshake ReadyHandshake() {
  Handshake handshake(kStart);
  handshake.SetReady(true);
  return handshake;
}

TEST(Handshake, StartsWithTheMapVersionAndNoResult) {
  Handshake handshake(kStart);
  EXPECT_EQ(At(handshake, kRegMapVersion), kMapVersion);
  EXPECT_EQ(At(handshake, kRegStatus), static_cast<uint16_t>(BoxStatus::kStarting));
  EXPECT_EQ(At(handshake, kRegResultState), static_cast<uint16_t>(ResultState::kNone));
  EXPECT_EQ(At(handshake, kRegClassIndex), kNoClass);
}

TEST(Handshake, ATriggerCarriesItsRecipeAndPartAndMakesTheBoxBusy) {
  Handshake handshake = ReadyHandshake();
  auto trigger = handshake.OnPlcWrite(kRegTrigger, {7, 2, 0x0001, 0x0002});
  ASSERT_TRUE(trigger.ok());
  ASSERT_TRUE(trigger->started.has_value());
  EXPECT_FALSE(trigger->answered_busy.has_value());
  EXPECT_EQ(trigger->started->seq, 7);
  EXPECT_EQ(trigger->started->recipe, 2);
  EXPECT_EQ(trigger->started->part_id, 0x00010002u);
  EXPECT_EQ(At(handshake, kRegStatus), static_cast<uint16_t>(BoxStatus::kBusy));
  EXPECT_EQ(At(handshake, kRegTriggersAccepted), 1);
}

TEST(Handshake, TheSameSequenceAgainOrZeroIsNoTrigger) {
  Handshake handshake = ReadyHandshake();
  ASSERT_TRUE(handshake.OnPlcWrite(kRegTrigger, {5}).value().started.has_value());
  ASSERT_TRUE(handshake.OnResult(5, Ok(1)));
  EXPECT_FALSE(handshake.OnPlcWrite(kRegTrigger, {5}).value().started.has_value());
  EXPECT_FALSE(handshake.OnPlcWrite(kRegTrigger, {0}).value().started.has_value());
  EXPECT_EQ(At(handshake, kRegTriggersAccepted), 1);
}

TEST(Handshake, ATriggerWhileBusyIsCountedAndAnsweredBusy) {
  Handshake handshake = ReadyHandshake();
  ASSERT_TRUE(handshake.OnPlcWrite(kRegTrigger, {1}).value().started.has_value());
  const auto busy = handshake.OnPlcWrite(kRegTrigger, {2}).value();
  EXPECT_FALSE(busy.started.has_value());
  EXPECT_EQ(busy.answered_busy, std::optional<uint16_t>(2));
  EXPECT_EQ(At(handshake, kRegBusyTriggers), 1);
  EXPECT_EQ(At(handshake, kRegBusySeq), 2);
  // The inspection in progress still ends with its own sequence.
  EXPECT_TRUE(handshake.OnResult(1, Ok(4)));
  EXPECT_EQ(At(handshake, kRegResultSeq), 1);
  EXPECT_FALSE(handshake.busy());
}

TEST(Handshake, ATriggerBeforeReadyIsAnsweredBusy) {
  Handshake handshake(kStart);
  EXPECT_FALSE(handshake.OnPlcWrite(kRegTrigger, {9}).value().started.has_value());
  EXPECT_EQ(At(handshake, kRegBusySeq), 9);
}

TEST(Handshake, TheResultIsWrittenOnlyWhenTheInspectionEnds) {
  Handshake handshake = ReadyHandshake();
  ASSERT_TRUE(handshake.OnPlcWrite(kRegTrigger, {3}).value().started.has_value());
  EXPECT_EQ(At(handshake, kRegResultSeq), 0);
  EXPECT_EQ(At(handshake, kRegResultState), static_cast<uint16_t>(ResultState::kNone));
  EXPECT_FALSE(handshake.OnResult(4, Ok(1))) << "a result for another trigger is ignored";
  ASSERT_TRUE(handshake.OnResult(3, Ok(6)));
  EXPECT_EQ(At(handshake, kRegResultSeq), 3);
  EXPECT_EQ(At(handshake, kRegResultState), static_cast<uint16_t>(ResultState::kOk));
  EXPECT_EQ(At(handshake, kRegClassIndex), 6);
  EXPECT_EQ(At(handshake, kRegScoreX1000), 975);
  EXPECT_EQ(At(handshake, kRegModelVersion), 3);
  EXPECT_EQ(At(handshake, kRegStatus), static_cast<uint16_t>(BoxStatus::kReady));
}

TEST(Handshake, AResultStaysUntilAcknowledged) {
  Handshake handshake = ReadyHandshake();
  ASSERT_TRUE(handshake.OnPlcWrite(kRegTrigger, {3}).value().started.has_value());
  ASSERT_TRUE(handshake.OnResult(3, Ok(6)));
  handshake.Tick(kStart + absl::Seconds(30));
  ASSERT_TRUE(handshake.OnPlcWrite(kRegAck, {2}).ok());  // not this result's sequence
  EXPECT_EQ(At(handshake, kRegResultState), static_cast<uint16_t>(ResultState::kOk));
  ASSERT_TRUE(handshake.OnPlcWrite(kRegAck, {3}).ok());
  EXPECT_EQ(At(handshake, kRegResultState), static_cast<uint16_t>(ResultState::kNone));
  EXPECT_EQ(At(handshake, kRegClassIndex), kNoClass);
  EXPECT_EQ(At(handshake, kRegResultSeq), 3) << "the sequence says which result was cleared";
}

TEST(Handshake, TheNextTriggerReplacesAnUnacknowledgedResult) {
  Handshake handshake = ReadyHandshake();
  ASSERT_TRUE(handshake.OnPlcWrite(kRegTrigger, {3}).value().started.has_value());
  ASSERT_TRUE(handshake.OnResult(3, Ok(6)));
  ASSERT_TRUE(handshake.OnPlcWrite(kRegTrigger, {4}).value().started.has_value());
  EXPECT_EQ(At(handshake, kRegResultState), static_cast<uint16_t>(ResultState::kNone));
}

TEST(Handshake, AnErrorKeepsTheLastModelVersionAndNamesTheCause) {
  Handshake handshake = ReadyHandshake();
  ASSERT_TRUE(handshake.OnPlcWrite(kRegTrigger, {1}).value().started.has_value());
  ASSERT_TRUE(handshake.OnResult(1, Ok(2)));
  ASSERT_TRUE(handshake.OnPlcWrite(kRegTrigger, {2}).value().started.has_value());
  ASSERT_TRUE(handshake.OnResult(2, ErrorOutcome(absl::UnavailableError("down"))));
  EXPECT_EQ(At(handshake, kRegResultState), static_cast<uint16_t>(ResultState::kError));
  EXPECT_EQ(At(handshake, kRegErrorCode), static_cast<uint16_t>(ErrorCode::kServerUnavailable));
  EXPECT_EQ(At(handshake, kRegClassIndex), kNoClass);
  EXPECT_EQ(At(handshake, kRegModelVersion), 3);
}

TEST(Handshake, WritesOutsideThePlcRegistersAreRefusedWhole) {
  Handshake handshake = ReadyHandshake();
  EXPECT_FALSE(handshake.OnPlcWrite(kRegResultState, {1}).ok());
  EXPECT_FALSE(handshake.OnPlcWrite(kRegAck, {1, 2}).ok());
  EXPECT_FALSE(handshake.OnPlcWrite(kRegTrigger, {}).ok());
  EXPECT_FALSE(handshake.OnPlcWrite(kRegTrigger - 1, {0, 5}).ok());
  EXPECT_EQ(At(handshake, kRegTrigger), 0) << "nothing of a refused write is applied";
}

TEST(Handshake, TheHeartbeatCountsWholeSecondsAndWraps) {
  Handshake handshake(kStart);
  handshake.Tick(kStart + absl::Milliseconds(999));
  EXPECT_EQ(At(handshake, kRegHeartbeat), 0);
  handshake.Tick(kStart + absl::Milliseconds(1500));
  EXPECT_EQ(At(handshake, kRegHeartbeat), 1);
  handshake.Tick(kStart + absl::Seconds(3));
  EXPECT_EQ(At(handshake, kRegHeartbeat), 3);
  handshake.Tick(kStart + absl::Seconds(65536 + 3));
  EXPECT_EQ(At(handshake, kRegHeartbeat), 3) << "16 bits wrap";
}

v1::ClassifyResponse Response(const std::string& label, uint32_t index, float score) {
  v1::ClassifyResponse response;
  v1::Prediction* top = response.add_predictions();
  top->set_label(label);
  top->set_index(index);
  top->set_score(score);
  response.mutable_model()->set_version("12");
  return response;
}

TEST(Recipes, OkWhenTheTopLabelIsAcceptedAndConfident) {
  auto recipes = Recipes::Create({"Sneaker", "Ankle boot"}, "");
  ASSERT_TRUE(recipes.ok()) << recipes.status();
  const Recipe& recipe = *recipes->Find(0);
  Outcome ok = DecideOutcome(Response("Ankle boot", 9, 0.9876f), recipe, 0.6);
  EXPECT_EQ(ok.state, ResultState::kOk);
  EXPECT_EQ(ok.class_index, 9);
  EXPECT_EQ(ok.score_x1000, 988);
  EXPECT_EQ(ok.model_version, 12);
  EXPECT_EQ(DecideOutcome(Response("Shirt", 6, 0.99f), recipe, 0.6).state, ResultState::kNg);
  Outcome unsure = DecideOutcome(Response("Sneaker", 7, 0.5f), recipe, 0.6);
  EXPECT_EQ(unsure.state, ResultState::kNg) << "an unsure accepted class is not OK";
  EXPECT_TRUE(unsure.needs_inspection);
}

TEST(Recipes, AFileAddsRecipesById) {
  auto recipes = Recipes::Create(
      {}, R"({"recipes": [{"id": 2, "name": "shirts", "accepted": ["Shirt", "T-shirt/top"]}]})");
  ASSERT_TRUE(recipes.ok()) << recipes.status();
  EXPECT_EQ(recipes->Find(0), nullptr);
  ASSERT_NE(recipes->Find(2), nullptr);
  EXPECT_EQ(recipes->Find(2)->accepted.count("Shirt"), 1u);
}

TEST(Recipes, BadRecipesNameTheFlagAndTheFault) {
  for (const char* json : {"[]", "{\"recipes\": [{\"id\": 0, \"accepted\": [\"a\"]}]}",
                           "{\"recipes\": [{\"id\": 1, \"accepted\": []}]}",
                           "{\"recipes\": [{\"id\": 1, \"accepted\": [\"a\"]}, "
                           "{\"id\": 1, \"accepted\": [\"b\"]}]}",
                           "{\"recipes\": [{\"id\": 70000, \"accepted\": [\"a\"]}]}", "not json"}) {
    auto recipes = Recipes::Create({"x"}, json);
    ASSERT_FALSE(recipes.ok()) << json;
    EXPECT_NE(recipes.status().message().find("--recipes"), std::string::npos);
  }
  EXPECT_FALSE(Recipes::Create({}, "").ok());
}

TEST(Recipes, ErrorsMapToThePlcErrorCodes) {
  EXPECT_EQ(ErrorOutcome(absl::DeadlineExceededError("")).error, ErrorCode::kTimeout);
  EXPECT_EQ(ErrorOutcome(absl::InvalidArgumentError("")).error, ErrorCode::kRefused);
  EXPECT_EQ(ErrorOutcome(absl::FailedPreconditionError("")).error, ErrorCode::kCaptureFailed);
  EXPECT_EQ(ErrorOutcome(absl::NotFoundError("")).error, ErrorCode::kUnknownRecipe);
  EXPECT_EQ(ErrorOutcome(absl::UnavailableError("")).state, ResultState::kError);
}

}  // namespace
}  // namespace matid::plc
