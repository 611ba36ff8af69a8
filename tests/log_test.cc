// common/log.h: levels, the minimum level, the --log_level flag's parsing,
// and one whole line per call.
#include "common/log.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class LogTest : public ::testing::Test {
 protected:
  ~LogTest() override { SetMinLogLevel(LogLevel::kInfo); }
};

TEST_F(LogTest, EachLevelHasItsTagAfterTheProgramName) {
  SetMinLogLevel(LogLevel::kDebug);
  ::testing::internal::CaptureStderr();
  LogDebug("probe %d", 1);
  LogInfo("frames shrunk to %dx%d", 112, 112);
  LogWarning("frame %d refused: %s", 7, "queue full");
  LogError("%s", "not saved");
  const std::string lines = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(lines,
            "log_test: DEBUG probe 1\n"
            "log_test: frames shrunk to 112x112\n"
            "log_test: WARNING frame 7 refused: queue full\n"
            "log_test: ERROR not saved\n");
}

TEST_F(LogTest, LinesBelowTheMinimumLevelAreDropped) {
  SetMinLogLevel(LogLevel::kWarning);
  ::testing::internal::CaptureStderr();
  LogDebug("debug line");
  LogInfo("info line");
  LogWarning("warning line");
  LogLine(LogLevel::kInfo, "direct info line");
  LogLine(LogLevel::kError, "direct error line\n");
  const std::string lines = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(lines, Not(HasSubstr("debug line")));
  EXPECT_THAT(lines, Not(HasSubstr("info line")));
  EXPECT_THAT(lines, HasSubstr("WARNING warning line\n"));
  // A message that ends its own line gets no second newline.
  EXPECT_THAT(lines, HasSubstr("ERROR direct error line\n"));
  EXPECT_THAT(lines, Not(HasSubstr("\n\n")));
  EXPECT_FALSE(LogLevelEnabled(LogLevel::kInfo));
  EXPECT_TRUE(LogLevelEnabled(LogLevel::kError));
}

TEST_F(LogTest, TheFlagTakesTheFourNamesInAnyCase) {
  LogLevel level = LogLevel::kInfo;
  std::string error;
  EXPECT_TRUE(AbslParseFlag("DEBUG", &level, &error));
  EXPECT_EQ(level, LogLevel::kDebug);
  EXPECT_TRUE(AbslParseFlag("warning", &level, &error));
  EXPECT_EQ(level, LogLevel::kWarning);
  EXPECT_EQ(AbslUnparseFlag(LogLevel::kError), "error");
  EXPECT_FALSE(AbslParseFlag("verbose", &level, &error));
  EXPECT_EQ(level, LogLevel::kWarning);
  EXPECT_THAT(error, HasSubstr("debug, info, warning or error"));
  const absl::StatusOr<LogLevel> parsed = ParseLogLevel("loud");
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("--log_level=loud"));
}

}  // namespace
}  // namespace matid
