#include "common/channel_credentials.h"

#include <grpcpp/create_channel.h>

#include <utility>

#include "common/file_contents.h"

namespace matid {

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const ClientTlsFiles& files) {
  if (files.ca.empty()) {
    if (!files.cert.empty() || !files.key.empty()) {
      return absl::InvalidArgumentError(
          "a client certificate or key needs --tls_ca (the CA of the server's certificate)");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError("mutual TLS needs both --tls_cert and --tls_key");
  }
  grpc::SslCredentialsOptions ssl;
  for (auto [path, field] : {std::pair{&files.ca, &ssl.pem_root_certs},
                             {&files.cert, &ssl.pem_cert_chain},
                             {&files.key, &ssl.pem_private_key}}) {
    if (path->empty()) continue;
    absl::StatusOr<std::string> pem = ReadFileContents(*path);
    if (!pem.ok()) return pem.status();
    *field = *std::move(pem);
  }
  return grpc::SslCredentials(ssl);
}

std::shared_ptr<grpc::Channel> CreateServerChannel(
    const std::string& target, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    grpc::ChannelArguments arguments) {
  arguments.SetLoadBalancingPolicyName("round_robin");
  // A name is resolved again when a connection closes (a server's maximum
  // connection age, a server gone); gRPC's default spaces resolutions 30 s
  // apart, which would hide a new server for that long.
  arguments.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 5000);
  return grpc::CreateCustomChannel(target, credentials, arguments);
}

}  // namespace matid
