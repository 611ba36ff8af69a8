// Checks a model directory's files against the sha256 digests its
// metadata.json records (written by `model_export publish`), so a partial
// copy, a truncated file or a changed file is refused before anything is
// loaded. Pure function of the files; safe from any thread.
#ifndef MATID_SERVER_BACKEND_MODEL_FILES_H_
#define MATID_SERVER_BACKEND_MODEL_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/backend/model_info.h"

namespace matid {

// Lowercase hex sha256 of a file's contents; NOT_FOUND naming the file.
absl::StatusOr<std::string> FileSha256(const std::string& path);

// OK when `info` records no digests, or when every file it lists exists in
// `model_dir` and matches. Otherwise FAILED_PRECONDITION naming the file and
// what is wrong (missing, or not matching: a truncated or changed copy);
// INVALID_ARGUMENT for a listed name that is not a plain file name.
absl::Status VerifyModelFiles(const std::string& model_dir, const ModelInfo& info);

}  // namespace matid

#endif  // MATID_SERVER_BACKEND_MODEL_FILES_H_
