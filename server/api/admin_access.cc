#include "server/api/admin_access.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace matid {
namespace {

// The address part of a TCP peer ("127.0.0.1", "[::1]"), or empty.
std::string PeerHost(absl::string_view peer) {
  std::string address;
  if (absl::ConsumePrefix(&peer, "ipv4:")) {
    address = std::string(peer);
  } else if (absl::ConsumePrefix(&peer, "ipv6:")) {  // gRPC escapes the brackets
    address = absl::StrReplaceAll(peer, {{"%5B", "["}, {"%5D", "]"}});
  } else {
    return "";
  }
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? "" : address.substr(0, colon);
}

bool IsLoopbackHost(absl::string_view host) {
  // Exactly this machine's own address: not all of 127/8, which includes
  // proxies' source addresses such as Istio's inbound 127.0.0.6.
  return host == "127.0.0.1" || host == "[::1]" || host == "[::ffff:127.0.0.1]";
}

}  // namespace

absl::Status CheckAdminAccess(absl::string_view peer, const std::vector<std::string>& identities,
                              const AdminAccess& access) {
  if (absl::StartsWith(peer, "unix:")) return absl::OkStatus();  // the socket's permissions decide
  if (access.loopback && IsLoopbackHost(PeerHost(peer))) return absl::OkStatus();
  for (const std::string& identity : identities) {
    if (std::find(access.client_subjects.begin(), access.client_subjects.end(), identity) !=
        access.client_subjects.end()) {
      return absl::OkStatus();
    }
  }
  return absl::PermissionDeniedError(
      absl::StrCat("the admin service takes callers on the admin socket (--admin_socket), ",
                   access.loopback ? "on 127.0.0.1 or ::1, " : "",
                   "or with a client certificate listed in --admin_client_subjects; ", peer,
                   identities.empty() ? " presented no certificate"
                                      : absl::StrCat(" presented ", identities.front())));
}

}  // namespace matid
