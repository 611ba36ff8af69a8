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

absl::string_view Tag(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG ";
    case LogLevel::kInfo:
      return "";
    case LogLevel::kWarning:
      return "WARNING ";
    case LogLevel::kError:
      return "ERROR ";
  }
  return "";
}

}  // namespace

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "debug") return LogLevel::kDebug;
  if (lower == "info") return LogLevel::kInfo;
  if (lower == "warning") return LogLevel::kWarning;
  if (lower == "error") return LogLevel::kError;
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

std::string AbslUnparseFlag(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

void SetMinLogLevel(LogLevel level) { min_level.store(static_cast<int>(level)); }

bool LogLevelEnabled(LogLevel level) { return static_cast<int>(level) >= min_level.load(); }

void LogLine(LogLevel level, absl::string_view message) {
  if (!LogLevelEnabled(level)) return;
  std::string line = absl::StrCat(program_invocation_short_name, ": ", Tag(level), message);
  if (line.empty() || line.back() != '\n') line.push_back('\n');
  std::lock_guard<std::mutex> lock(WriteMutex());
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace matid
