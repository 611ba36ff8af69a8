#include "server/api/admin_access.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace matid {
namespace {

bool IsLoopback(absl::string_view peer) {
  return absl::StartsWith(peer, "ipv4:127.") || absl::StartsWith(peer, "ipv6:[::1]:") ||
         absl::StartsWith(peer, "ipv6:[::ffff:127.") || absl::StartsWith(peer, "unix:");
}

}  // namespace

absl::Status CheckAdminAccess(absl::string_view peer, const std::vector<std::string>& identities,
                              const std::vector<std::string>& admin_subjects) {
  if (IsLoopback(peer)) return absl::OkStatus();
  for (const std::string& identity : identities) {
    if (std::find(admin_subjects.begin(), admin_subjects.end(), identity) != admin_subjects.end()) {
      return absl::OkStatus();
    }
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "the admin service takes callers on loopback, or with a client certificate listed in "
      "--admin_client_subjects; ",
      peer,
      identities.empty() ? " presented no certificate"
                         : absl::StrCat(" presented ", identities.front())));
}

}  // namespace matid
