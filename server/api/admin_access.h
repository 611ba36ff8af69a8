// Who may use the admin service: callers on loopback, or callers presenting
// a client certificate whose subject or CN is on --admin_client_subjects.
// Pure function; safe from any thread.
#ifndef MATID_SERVER_API_ADMIN_ACCESS_H_
#define MATID_SERVER_API_ADMIN_ACCESS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace matid {

// `peer` as gRPC gives it ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000",
// "unix:/path"); `identities` the caller's certificate subject and CN (empty
// without mutual TLS). PERMISSION_DENIED saying what would be accepted.
absl::Status CheckAdminAccess(absl::string_view peer, const std::vector<std::string>& identities,
                              const std::vector<std::string>& admin_subjects);

}  // namespace matid

#endif  // MATID_SERVER_API_ADMIN_ACCESS_H_
