#include "server/api/server_credentials.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_metadata_processor.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/file_contents.h"

namespace matid {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  absl::StatusOr<std::string> content = ReadFileContents(path);
  if (!content.ok()) return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  return content;
}

// Refuses calls whose client certificate subject is not on the list.
class SubjectAllowList final : public grpc::AuthMetadataProcessor {
 public:
  explicit SubjectAllowList(std::vector<std::string> allowed) : allowed_(std::move(allowed)) {}

  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata&, grpc::AuthContext* context, OutputMetadata*,
                       OutputMetadata*) override {
    for (const char* property : {GRPC_X509_SUBJECT_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME}) {
      for (const grpc::string_ref& value : context->FindPropertyValues(property)) {
        const std::string identity(value.data(), value.size());
        if (std::find(allowed_.begin(), allowed_.end(), identity) != allowed_.end()) {
          return grpc::Status::OK;
        }
      }
    }
    // No secrets here: a subject is public, and saying which one was refused helps.
    std::string subject = "(none)";
    for (const auto& value : context->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME)) {
      subject.assign(value.data(), value.size());
    }
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("client certificate ", subject, " is not allowed"));
  }

 private:
  const std::vector<std::string> allowed_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options) {
  if (options.cert_file.empty()) {
    if (!options.key_file.empty() || !options.client_ca_file.empty() ||
        !options.allowed_client_subjects.empty()) {
      return absl::InvalidArgumentError(
          "TLS options need --tls_cert and --tls_key (client CA and allow-list build on TLS)");
    }
    return grpc::InsecureServerCredentials();
  }
  if (options.key_file.empty()) return absl::InvalidArgumentError("--tls_cert needs --tls_key");
  if (!options.allowed_client_subjects.empty() && options.client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--allowed_client_subjects needs --tls_client_ca (mutual TLS)");
  }
  auto cert = ReadFile(options.cert_file, "server certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadFile(options.key_file, "server key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!options.client_ca_file.empty()) {
    auto ca = ReadFile(options.client_ca_file, "client CA");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::SslServerCredentials(ssl);
  if (!options.allowed_client_subjects.empty()) {
    credentials->SetAuthMetadataProcessor(
        std::make_shared<SubjectAllowList>(options.allowed_client_subjects));
  }
  return credentials;
}

}  // namespace matid
