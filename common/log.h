// Log lines with a level, on standard error, one whole line per call:
//   "<program>: <message>"          INFO
//   "<program>: WARNING <message>"  WARNING
//   "<program>: ERROR <message>"    ERROR
//   "<program>: DEBUG <message>"    DEBUG (shown only with --log_level=debug)
// <program> is the executable's name. Lines below the minimum level are
// dropped; every program sets it from --log_level (common/program_flags.h),
// the default is INFO. Messages are absl::StrFormat formats, checked at
// compile time: LogWarning("frame %d refused: %s", id, status.ToString()).
// Thread-safety: every function may be called from any thread; lines from
// different threads never interleave.
#ifndef MATID_COMMON_LOG_H_
#define MATID_COMMON_LOG_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace matid {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// "debug", "info", "warning" or "error"; INVALID_ARGUMENT naming them otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);

// For ABSL_FLAG(matid::LogLevel, ...): a bad value is refused by the flag
// parser with this message.
bool AbslParseFlag(absl::string_view text, LogLevel* level, std::string* error);
std::string AbslUnparseFlag(LogLevel level);

void SetMinLogLevel(LogLevel level);
bool LogLevelEnabled(LogLevel level);

// Writes one line at `level` (nothing when the level is below the minimum).
void LogLine(LogLevel level, absl::string_view message);

template <typename... Args>
void LogDebug(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (LogLevelEnabled(LogLevel::kDebug))
    LogLine(LogLevel::kDebug, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogInfo(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (LogLevelEnabled(LogLevel::kInfo)) LogLine(LogLevel::kInfo, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogWarning(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (LogLevelEnabled(LogLevel::kWarning)) {
    LogLine(LogLevel::kWarning, absl::StrFormat(format, args...));
  }
}
template <typename... Args>
void LogError(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (LogLevelEnabled(LogLevel::kError))
    LogLine(LogLevel::kError, absl::StrFormat(format, args...));
}

}  // namespace matid

#endif  // MATID_COMMON_LOG_H_
