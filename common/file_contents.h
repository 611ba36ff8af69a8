// Reads a whole file into a string (bytes as they are), writes one, checks
// a folder can be written in. One helper for
// the model metadata, TLS certificates and keys, images read by the tools,
// and the frames the camera and the server save for people to look at.
// Functions without shared state; safe from any thread.
#ifndef MATID_COMMON_FILE_CONTENTS_H_
#define MATID_COMMON_FILE_CONTENTS_H_

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace matid {

// NOT_FOUND naming the path when the file cannot be opened or read.
inline absl::StatusOr<std::string> ReadFileContents(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream content;
  content << file.rdbuf();
  if (file.bad()) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return content.str();
}

// Writes `bytes` to `path`, replacing it; UNAVAILABLE saying which file and
// why otherwise.
inline absl::Status WriteFileContents(const std::string& path, absl::string_view bytes) {
  std::ofstream file(path, std::ios::binary);
  if (file) file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (file) file.close();
  if (!file) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// OK when `dir` exists (it is created if needed) and a file can be written
// in it; PERMISSION_DENIED naming `flag`=dir otherwise. For folders checked
// at start, so that a read-only or foreign-owned volume fails loudly.
inline absl::Status CheckFolderWritable(const std::string& dir, absl::string_view flag) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat(flag, "=", dir, " cannot be created: ", error.message()));
  }
  const std::string probe = absl::StrCat(dir, "/.matid-write-check");
  absl::Status written = WriteFileContents(probe, "ok");
  std::filesystem::remove(probe, error);
  if (!written.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat(flag, "=", dir, " is not writable: ", written.message()));
  }
  return absl::OkStatus();
}

}  // namespace matid

#endif  // MATID_COMMON_FILE_CONTENTS_H_
