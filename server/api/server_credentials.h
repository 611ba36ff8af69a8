// gRPC server credentials from files: plaintext, TLS, or mutual TLS (client
// certificate required and verified against a CA), optionally restricted to
// an allow-list of client certificate subjects. Built once at start-up.
#ifndef MATID_SERVER_API_SERVER_CREDENTIALS_H_
#define MATID_SERVER_API_SERVER_CREDENTIALS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace matid {

struct TlsOptions {
  std::string cert_file;       // server certificate chain (PEM); empty: plaintext
  std::string key_file;        // its private key (PEM)
  std::string client_ca_file;  // set: mutual TLS, clients must present a cert signed by this CA
  // With mutual TLS: only these clients, each given as the full subject
  // ("CN=plant-app,O=Plant") or just the common name ("plant-app").
  // Others get PERMISSION_DENIED. Empty: any client the CA signed.
  std::vector<std::string> allowed_client_subjects;
};

// INVALID_ARGUMENT for inconsistent options, NOT_FOUND for unreadable files.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options);

}  // namespace matid

#endif  // MATID_SERVER_API_SERVER_CREDENTIALS_H_
