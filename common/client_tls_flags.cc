#include "common/client_tls_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "common/channel_credentials.h"

ABSL_FLAG(std::string, tls_ca, "", "CA (PEM) that signed the server's certificate: use TLS.");
ABSL_FLAG(std::string, tls_cert, "", "Client certificate (PEM) for mutual TLS (with --tls_key).");
ABSL_FLAG(std::string, tls_key, "", "Client private key (PEM) for mutual TLS (with --tls_cert).");

namespace matid {

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromFlags() {
  return ChannelCredentials(
      {absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key)});
}

}  // namespace matid
