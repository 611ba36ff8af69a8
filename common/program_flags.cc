#include "common/program_flags.h"

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "common/log.h"

ABSL_FLAG(matid::LogLevel, log_level, matid::LogLevel::kInfo,
          "Least important log lines shown: debug, info, warning or error");

namespace matid {

namespace {
// The program's name for error lines: argv[0] without its folder. Written
// once by ParseProgramFlags before any thread starts.
std::string& ProgramName() {
  static std::string name = "matid";
  return name;
}
}  // namespace

std::vector<char*> ParseProgramFlags(int argc, char** argv, absl::string_view usage) {
  if (argc > 0 && argv[0] != nullptr) {
    const std::string invoked = argv[0];
    ProgramName() = invoked.substr(invoked.find_last_of('/') + 1);
  }
  absl::SetProgramUsageMessage(usage);
  absl::FlagsUsageConfig config;
  // Our flags, wherever they are defined; not abseil's own (--flagfile, ...).
  auto ours = [](absl::string_view file) { return !absl::StrContains(file, "absl/"); };
  config.contains_help_flags = ours;
  config.contains_helpshort_flags = ours;
  absl::SetFlagsUsageConfig(config);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  SetMinLogLevel(absl::GetFlag(FLAGS_log_level));
  return positional;
}

int FailWith(const absl::Status& status, int exit_code) {
  std::fprintf(stderr, "%s: %s\n", ProgramName().c_str(), status.ToString().c_str());
  return exit_code;
}

}  // namespace matid
