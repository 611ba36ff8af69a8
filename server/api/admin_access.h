// Who may use the admin service (matid.v1.ModelAdmin and the Open Inference
// Protocol's repository calls): callers on the admin unix socket, whose file
// permissions say who can connect; callers from this machine's loopback
// address over TCP, unless that grant is turned off; and callers presenting
// a client certificate whose subject or CN is listed. Pure function; safe
// from any thread.
#ifndef MATID_SERVER_API_ADMIN_ACCESS_H_
#define MATID_SERVER_API_ADMIN_ACCESS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace matid {

struct AdminAccess {
  // Callers from 127.0.0.1 or ::1 over TCP are admins (--admin_from_loopback).
  // Everything that shares the host's or the pod's network shares
  // loopback too (sidecars, TLS terminators, kubectl port-forward, every
  // local user of a box): turn it off there and use the admin socket.
  bool loopback = true;
  // Client certificate subjects or CNs (mutual TLS) that are admins.
  std::vector<std::string> client_subjects;
};

// `peer` as gRPC gives it ("ipv4:127.0.0.1:5000", "ipv6:%5B::1%5D:5000",
// "unix:/path"); `identities` the caller's certificate subject and CN (empty
// without mutual TLS). PERMISSION_DENIED saying what would be accepted.
absl::Status CheckAdminAccess(absl::string_view peer, const std::vector<std::string>& identities,
                              const AdminAccess& access);

}  // namespace matid

#endif  // MATID_SERVER_API_ADMIN_ACCESS_H_
