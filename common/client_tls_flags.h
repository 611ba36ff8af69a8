// The --tls_ca, --tls_cert and --tls_key flags of every gRPC client program
// (camera, classify, health probe), defined once here, and the channel
// credentials they describe. Linking this library adds the three flags to
// the program. Call after flags are parsed; safe from any thread.
#ifndef MATID_COMMON_CLIENT_TLS_FLAGS_H_
#define MATID_COMMON_CLIENT_TLS_FLAGS_H_

#include <grpcpp/security/credentials.h>

#include <memory>

#include "absl/status/statusor.h"

namespace matid {

// Plaintext without --tls_ca; TLS with it; mutual TLS with --tls_cert and
// --tls_key too. Errors name the flag (see ChannelCredentials).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromFlags();

}  // namespace matid

#endif  // MATID_COMMON_CLIENT_TLS_FLAGS_H_
