// Client-side credentials for the gRPC channel to matid-server: plaintext,
// TLS (the CA that signed the server's certificate) or mutual TLS (plus the
// client's certificate and key), and the channel itself, spread over every
// server a target names. One piece for every client program.
// Pure functions, safe from any thread.
#ifndef MATID_COMMON_CHANNEL_CREDENTIALS_H_
#define MATID_COMMON_CHANNEL_CREDENTIALS_H_

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

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

// A channel to one or several matid-servers. `target` is host:port, a DNS
// name with every address it resolves to (dns:///matid-server:50051), or a
// list (ipv4:10.0.0.1:50051,10.0.0.2:50051). Calls, and each new stream, go
// round-robin to the servers that are up; a name is resolved again when a
// server closes a connection (matid-server --max_connection_age_ms), so
// servers added later get traffic.
std::shared_ptr<grpc::Channel> CreateServerChannel(
    const std::string& target, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    grpc::ChannelArguments arguments = {});

}  // namespace matid

#endif  // MATID_COMMON_CHANNEL_CREDENTIALS_H_
