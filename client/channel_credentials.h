// Client-side credentials for the gRPC channel to matid-server: plaintext,
// TLS (the CA that signed the server's certificate) or mutual TLS (plus the
// client's certificate and key). One piece for every client program.
// Pure function, safe from any thread.
#ifndef MATID_CLIENT_CHANNEL_CREDENTIALS_H_
#define MATID_CLIENT_CHANNEL_CREDENTIALS_H_

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace matid {

struct ClientTlsFiles {
  std::string ca;    // PEM of the CA that signed the server's certificate; empty: plaintext
  std::string cert;  // PEM client certificate for mutual TLS (with key), or empty
  std::string key;   // PEM client private key, or empty
};

// NOT_FOUND naming the file that cannot be read; INVALID_ARGUMENT when a
// certificate or key is given without a CA, or one of cert/key without the
// other.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const ClientTlsFiles& files);

}  // namespace matid

#endif  // MATID_CLIENT_CHANNEL_CREDENTIALS_H_
