#include "server/backend/model_files.h"

#include <openssl/evp.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_contents.h"

namespace matid {

absl::StatusOr<std::string> FileSha256(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (file == nullptr) return absl::NotFoundError(absl::StrCat(path, " cannot be read"));
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> context(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (context == nullptr || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("sha256 unavailable");
  }
  std::vector<char> block(1 << 20);
  size_t read;
  while ((read = std::fread(block.data(), 1, block.size(), file.get())) > 0) {
    EVP_DigestUpdate(context.get(), block.data(), read);
  }
  if (std::ferror(file.get())) return absl::DataLossError(absl::StrCat("reading ", path));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context.get(), digest, &length);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

absl::Status VerifyModelFiles(const std::string& model_dir, const ModelInfo& info,
                              const std::string& skip) {
  for (const auto& [name, expected] : info.file_sha256) {
    if (!skip.empty() && name == skip) continue;
    if (name.empty() || absl::StrContains(name, "/") || name == "." || name == "..") {
      return absl::InvalidArgumentError(absl::StrCat(model_dir, "/metadata.json: sha256 lists \"",
                                                     name, "\", which is not a file name"));
    }
    const std::string path = absl::StrCat(model_dir, "/", name);
    absl::StatusOr<std::string> actual = FileSha256(path);
    if (!actual.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " is missing; metadata.json lists it (a partial copy?): not loading ", model_dir));
    }
    if (*actual != absl::AsciiStrToLower(expected)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path,
                       " does not match the sha256 in metadata.json (a truncated or "
                       "changed copy): not loading ",
                       model_dir));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<VerifiedModel> ReadVerifiedModel(const std::string& model_dir,
                                                const std::string& model_file, bool require_sha256,
                                                const TrustedModelKeys* keys) {
  const std::string metadata_path = absl::StrCat(model_dir, "/metadata.json");
  absl::StatusOr<std::string> metadata = ReadFileContents(metadata_path);
  if (!metadata.ok()) return metadata.status();
  if (keys != nullptr) {
    const std::string signature_path = absl::StrCat(model_dir, "/", kModelSignatureFile);
    absl::StatusOr<std::string> signature = ReadFileContents(signature_path);
    if (!signature.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          signature_path,
          " is missing: with --trusted_model_keys only signed versions load (model_export "
          "publish --signing_key)"));
    }
    if (absl::Status trusted = keys->Verify(*metadata, *signature, model_dir); !trusted.ok()) {
      return trusted;
    }
  }
  absl::StatusOr<ModelInfo> info = ParseModelMetadata(*metadata);
  if (!info.ok()) {
    return absl::Status(info.status().code(),
                        absl::StrCat(metadata_path, ": ", info.status().message()));
  }
  if (absl::Status whole = VerifyModelFiles(model_dir, *info, model_file); !whole.ok()) {
    return whole;
  }
  const std::string path = absl::StrCat(model_dir, "/", model_file);
  const auto recorded = info->file_sha256.find(model_file);
  absl::StatusOr<std::string> bytes = ReadFileContents(path);
  if (!bytes.ok() && recorded != info->file_sha256.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " is missing; metadata.json lists it (a partial copy?): not loading ", model_dir));
  }
  if (!bytes.ok()) return absl::NotFoundError(absl::StrCat("model file ", path, " does not exist"));
  const std::string digest = Sha256Hex(*bytes);
  if (recorded == info->file_sha256.end() && (require_sha256 || keys != nullptr)) {
    return absl::FailedPreconditionError(
        absl::StrCat(metadata_path, " records no sha256 for ", model_file,
                     ": put versions into a repository with `python3 -m model_export publish`"));
  }
  if (recorded != info->file_sha256.end() && absl::AsciiStrToLower(recorded->second) != digest) {
    return absl::FailedPreconditionError(absl::StrCat(
        path,
        " does not match the sha256 in metadata.json (a truncated or changed copy): not "
        "loading ",
        model_dir));
  }
  info->loaded_sha256 = digest;
  return VerifiedModel{*std::move(info), *std::move(bytes)};
}

}  // namespace matid
