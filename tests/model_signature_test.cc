// Signed model versions: with trusted keys, a version loads only when its
// signature.ed25519 is a trusted key's over the exact bytes of its
// metadata.json, and the model file's own bytes match the digest recorded
// there. Keys are made here with OpenSSL; no server, no torch.
#include "server/backend/model_signature.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/file_contents.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/model_files.h"

namespace matid {
namespace {

using ::testing::HasSubstr;

using PrivateKey = std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)>;

PrivateKey NewKey() {
  return PrivateKey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), &EVP_PKEY_free);
}

std::string Sign(EVP_PKEY* key, const std::string& message) {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> context(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EXPECT_EQ(EVP_DigestSignInit(context.get(), nullptr, nullptr, nullptr, key), 1);
  size_t length = 64;
  std::string signature(length, '\0');
  EXPECT_EQ(
      EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()),
      1);
  signature.resize(length);
  return signature;
}

class SignedModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::path(::testing::TempDir()) / "signed-model").string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(WriteFileContents(dir_ + "/model.pt", "abc").ok());
    metadata_ = absl::StrCat(
        R"({"labels": ["a", "b"], "input": {"width": 28, "height": 28}, "sha256": {"model.pt": ")",
        Sha256Hex("abc"), R"("}})");
    ASSERT_TRUE(WriteFileContents(dir_ + "/metadata.json", metadata_).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The public half of `key` as a PEM file; returns its path.
  std::string PublicPem(EVP_PKEY* key, const std::string& name) {
    const std::string path = dir_ + "/../" + name;
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "w"), &std::fclose);
    EXPECT_EQ(PEM_write_PUBKEY(file.get(), key), 1);
    return path;
  }
  std::shared_ptr<const TrustedModelKeys> Trust(const std::vector<std::string>& pems) {
    auto keys = TrustedModelKeys::Load(pems);
    EXPECT_TRUE(keys.ok()) << keys.status();
    return keys.ok() ? *keys : nullptr;
  }
  absl::Status Read(const TrustedModelKeys* keys) {
    return ReadVerifiedModel(dir_, "model.pt", true, keys).status();
  }

  std::string dir_;
  std::string metadata_;
};

TEST_F(SignedModelTest, ATrustedKeysSignatureOverTheMetadataLoads) {
  PrivateKey ours = NewKey();
  PrivateKey other = NewKey();
  ASSERT_TRUE(
      WriteFileContents(dir_ + "/" + kModelSignatureFile, Sign(ours.get(), metadata_)).ok());
  // Any one of the trusted keys will do.
  auto keys =
      Trust({PublicPem(other.get(), "other.pub.pem"), PublicPem(ours.get(), "ours.pub.pem")});
  absl::StatusOr<VerifiedModel> model = ReadVerifiedModel(dir_, "model.pt", true, keys.get());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->model_bytes, "abc");  // the bytes checked are the bytes loaded
  EXPECT_EQ(model->info.loaded_sha256, Sha256Hex("abc"));
  EXPECT_EQ(model->info.labels.size(), 2u);
}

TEST_F(SignedModelTest, UnsignedChangedOrOtherKeysVersionsAreRefusedNamingWhy) {
  PrivateKey ours = NewKey();
  auto keys = Trust({PublicPem(ours.get(), "ours.pub.pem")});
  absl::Status unsigned_version = Read(keys.get());
  EXPECT_EQ(unsigned_version.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(unsigned_version.message(), HasSubstr("signature.ed25519 is missing"));
  EXPECT_TRUE(Read(nullptr).ok());  // without trusted keys, digests only

  PrivateKey stranger = NewKey();
  ASSERT_TRUE(
      WriteFileContents(dir_ + "/" + kModelSignatureFile, Sign(stranger.get(), metadata_)).ok());
  EXPECT_THAT(Read(keys.get()).message(), HasSubstr("not a signature of its metadata.json by a"));

  // Signed, then the labels edited: the bytes no longer match the signature.
  ASSERT_TRUE(
      WriteFileContents(dir_ + "/" + kModelSignatureFile, Sign(ours.get(), metadata_)).ok());
  ASSERT_TRUE(Read(keys.get()).ok());
  std::string edited = metadata_;
  edited.replace(edited.find("\"b\""), 3, "\"c\"");
  ASSERT_TRUE(WriteFileContents(dir_ + "/metadata.json", edited).ok());
  EXPECT_EQ(Read(keys.get()).code(), absl::StatusCode::kFailedPrecondition);

  // Signed metadata, but another model file: its digest no longer matches.
  ASSERT_TRUE(WriteFileContents(dir_ + "/metadata.json", metadata_).ok());
  ASSERT_TRUE(WriteFileContents(dir_ + "/model.pt", "abd").ok());
  EXPECT_THAT(Read(keys.get()).message(), HasSubstr("model.pt does not match the sha256"));
}

TEST_F(SignedModelTest, AKeyFileThatIsNotAnEd25519PublicKeyIsRefusedNamingTheFlag) {
  PrivateKey rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)),
                 &EVP_PKEY_free);
  auto not_ed25519 = TrustedModelKeys::Load({PublicPem(rsa.get(), "rsa.pub.pem")});
  EXPECT_EQ(not_ed25519.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(not_ed25519.status().message(), HasSubstr("--trusted_model_keys"));
  EXPECT_THAT(TrustedModelKeys::Load({dir_ + "/none.pem"}).status().message(),
              HasSubstr("cannot be read"));
}

}  // namespace
}  // namespace matid
