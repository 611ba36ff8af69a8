#include "common/log.h"

#include <errno.h>  // program_invocation_short_name (glibc)

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace matid {

namespace {

std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};

std::mutex& WriteMutex() {
  static std::mutex mu;
  return mu;
}

// Each level's flag name and the tag its lines carry.
struct LevelName {
  LogLevel level;
  const char* name;
  const char* tag;
};
constexpr LevelName kLevels[] = {{LogLevel::kDebug, "debug", "DEBUG "},
                                 {LogLevel::kInfo, "info", ""},
                                 {LogLevel::kWarning, "warning", "WARNING "},
                                 {LogLevel::kError, "error", "ERROR "}};

const LevelName& NameOf(LogLevel level) {
  for (const LevelName& known : kLevels) {
    if (known.level == level) return known;
  }
  return kLevels[1];
}

}  // namespace

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const LevelName& known : kLevels) {
    if (lower == known.name) return known.level;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--log_level=", name, ": must be debug, info, warning or error"));
}

bool AbslParseFlag(absl::string_view text, LogLevel* level, std::string* error) {
  absl::StatusOr<LogLevel> parsed = ParseLogLevel(text);
  if (!parsed.ok()) {
    *error = "must be debug, info, warning or error";
    return false;
  }
  *level = *parsed;
  return true;
}

std::string AbslUnparseFlag(LogLevel level) { return NameOf(level).name; }

void SetMinLogLevel(LogLevel level) { min_level.store(static_cast<int>(level)); }

bool LogLevelEnabled(LogLevel level) { return static_cast<int>(level) >= min_level.load(); }

void LogLine(LogLevel level, absl::string_view message) {
  if (!LogLevelEnabled(level)) return;
  std::string line = absl::StrCat(program_invocation_short_name, ": ", NameOf(level).tag, message);
  if (line.empty() || line.back() != '\n') line.push_back('\n');
  std::lock_guard<std::mutex> lock(WriteMutex());
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace matid
