// Checks a model directory's files against the sha256 digests its
// metadata.json records (written by `model_export publish`), so a partial
// copy, a truncated file or a changed file is refused before anything is
// loaded; with trusted keys, also who signed them (model_signature.h).
// Pure functions of the files; safe from any thread.
#ifndef MATID_SERVER_BACKEND_MODEL_FILES_H_
#define MATID_SERVER_BACKEND_MODEL_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/backend/model_info.h"
#include "server/backend/model_signature.h"

namespace matid {

// Lowercase hex sha256 of a file's contents; NOT_FOUND naming the file.
absl::StatusOr<std::string> FileSha256(const std::string& path);

// OK when `info` records no digests, or when every file it lists exists in
// `model_dir` and matches. Otherwise FAILED_PRECONDITION naming the file and
// what is wrong (missing, or not matching: a truncated or changed copy);
// INVALID_ARGUMENT for a listed name that is not a plain file name.
// `skip`: a listed file the caller checks itself (the model file it loads).
absl::Status VerifyModelFiles(const std::string& model_dir, const ModelInfo& info,
                              const std::string& skip = "");

// A version as it is loaded: its metadata and the model file's bytes, each
// checked on the very bytes that are used.
struct VerifiedModel {
  ModelInfo info;           // loaded_sha256 set: the digest of model_bytes
  std::string model_bytes;  // the model file, read once
};

// Reads metadata.json once; with `keys`, verifies its signature.ed25519
// over those bytes (FAILED_PRECONDITION naming the file when it is missing
// or not a trusted key's); parses the same bytes; checks every other listed
// file's digest; reads `model_file` once and checks its digest, which
// `require_sha256` demands be recorded. NOT_FOUND for a missing file.
absl::StatusOr<VerifiedModel> ReadVerifiedModel(const std::string& model_dir,
                                                const std::string& model_file, bool require_sha256,
                                                const TrustedModelKeys* keys);

}  // namespace matid

#endif  // MATID_SERVER_BACKEND_MODEL_FILES_H_
