// Command-line handling for matid's programs. ParseProgramFlags sets the
// usage message and makes --help (and --helpshort) list every flag the
// program defines (abseil's default lists only flags defined in a file named
// after the program, so `matid-server --help` printed "No flags matched");
// call it once, first thing in main, before any thread starts. It returns
// the positional arguments (argv[0] first), as absl::ParseCommandLine does.
// Every program gets --log_level (common/log.h) from here.
// FailWith prints "<program>: <error>" on standard error and returns the
// exit code, for `return FailWith(status);` in a main.
#ifndef MATID_COMMON_PROGRAM_FLAGS_H_
#define MATID_COMMON_PROGRAM_FLAGS_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace matid {

std::vector<char*> ParseProgramFlags(int argc, char** argv, absl::string_view usage);

int FailWith(const absl::Status& status, int exit_code = 1);

}  // namespace matid

#endif  // MATID_COMMON_PROGRAM_FLAGS_H_
