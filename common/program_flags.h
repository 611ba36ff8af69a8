// Command-line parsing for matid's programs: sets the usage message and makes
// --help (and --helpshort) list every flag the program defines. Abseil's
// default lists only flags defined in a file named after the program, so
// `matid-server --help` printed "No flags matched". Call once, first thing
// in main, before any thread starts. Returns the positional arguments
// (argv[0] first), as absl::ParseCommandLine does.
#ifndef MATID_COMMON_PROGRAM_FLAGS_H_
#define MATID_COMMON_PROGRAM_FLAGS_H_

#include <vector>

#include "absl/strings/string_view.h"

namespace matid {

std::vector<char*> ParseProgramFlags(int argc, char** argv, absl::string_view usage);

}  // namespace matid

#endif  // MATID_COMMON_PROGRAM_FLAGS_H_
