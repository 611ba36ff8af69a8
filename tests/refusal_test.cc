// Refusal reasons: the payload round trip, and every reason the server's
// sources attach is in kRefusalReasons (so metrics keep a handle for it).
#include "server/core/refusal.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace matid {
namespace {

TEST(Refusal, ReasonTravelsWithTheStatus) {
  EXPECT_EQ(RefusalReason(Refusal(absl::ResourceExhaustedError("full"), "queue_full")),
            "queue_full");
  EXPECT_EQ(RefusalReason(absl::InvalidArgumentError("no reason attached")), "invalid_argument");
  EXPECT_EQ(RefusalReason(absl::OkStatus()), "");
}

// The argument text of each `Refusal(...)` call in `source`: parentheses
// are matched outside string literals.
std::vector<std::string> RefusalCallArguments(const std::string& source) {
  std::vector<std::string> calls;
  const std::string opening = "Refusal(";
  for (size_t at = source.find(opening); at != std::string::npos;
       at = source.find(opening, at + 1)) {
    int depth = 1;
    bool in_string = false;
    size_t i = at + opening.size();
    for (; i < source.size() && depth > 0; ++i) {
      const char c = source[i];
      if (in_string) {
        if (c == '\\')
          ++i;
        else if (c == '"')
          in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '(') {
        ++depth;
      } else if (c == ')') {
        --depth;
      }
    }
    calls.push_back(source.substr(at + opening.size(), i - at - opening.size() - 1));
  }
  return calls;
}

TEST(Refusal, EveryReasonTheServerAttachesIsListed) {
  // The reason is the call's last argument, a snake_case string literal.
  const std::regex last_literal(R"re(,\s*"([a-z_]+)"\s*$)re");
  int found = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(std::string(kSourceDir) + "/server")) {
    if (entry.path().extension() != ".cc") continue;
    std::ifstream file(entry.path());
    std::stringstream text;
    text << file.rdbuf();
    for (const std::string& arguments : RefusalCallArguments(text.str())) {
      std::smatch match;
      if (!std::regex_search(arguments, match, last_literal)) continue;  // e.g. a declaration
      ++found;
      const std::string reason = match[1];
      EXPECT_NE(std::find(kRefusalReasons.begin(), kRefusalReasons.end(), reason),
                kRefusalReasons.end())
          << entry.path().filename() << " attaches reason \"" << reason
          << "\", missing from kRefusalReasons in server/core/refusal.h";
    }
  }
  EXPECT_GE(found, static_cast<int>(kRefusalReasons.size())) << "the pattern no longer matches";
}

}  // namespace
}  // namespace matid
