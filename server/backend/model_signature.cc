#include "server/backend/model_signature.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace matid {

struct TrustedModelKeys::Key {
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> pkey{nullptr, &EVP_PKEY_free};
};

TrustedModelKeys::~TrustedModelKeys() = default;

absl::StatusOr<std::shared_ptr<const TrustedModelKeys>> TrustedModelKeys::Load(
    const std::vector<std::string>& pem_files) {
  std::shared_ptr<TrustedModelKeys> keys(new TrustedModelKeys());
  for (const std::string& path : pem_files) {
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "r"), &std::fclose);
    if (file == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--trusted_model_keys: ", path, " cannot be read"));
    }
    auto key = std::make_unique<Key>();
    key->pkey.reset(PEM_read_PUBKEY(file.get(), nullptr, nullptr, nullptr));
    if (key->pkey == nullptr || EVP_PKEY_id(key->pkey.get()) != EVP_PKEY_ED25519) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--trusted_model_keys: ", path,
          " is not an Ed25519 public key in PEM (openssl pkey -in KEY -pubout writes one)"));
    }
    keys->keys_.push_back(std::move(key));
    keys->names_.push_back(path);
  }
  if (keys->keys_.empty()) {
    return absl::InvalidArgumentError("--trusted_model_keys names no key file");
  }
  return std::shared_ptr<const TrustedModelKeys>(std::move(keys));
}

absl::Status TrustedModelKeys::Verify(absl::string_view metadata, absl::string_view signature,
                                      const std::string& model_dir) const {
  for (const auto& key : keys_) {
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> context(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (context == nullptr ||
        EVP_DigestVerifyInit(context.get(), nullptr, nullptr, nullptr, key->pkey.get()) != 1) {
      return absl::InternalError("Ed25519 verification unavailable in OpenSSL");
    }
    if (EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(), reinterpret_cast<const unsigned char*>(metadata.data()),
                         metadata.size()) == 1) {
      return absl::OkStatus();
    }
  }
  return absl::FailedPreconditionError(absl::StrCat(
      model_dir, "/", kModelSignatureFile,
      " is not a signature of its metadata.json by a trusted key (", absl::StrJoin(names_, ", "),
      "): not loading it (publish it with model_export publish --signing_key)"));
}

std::string Sha256Hex(absl::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

}  // namespace matid
