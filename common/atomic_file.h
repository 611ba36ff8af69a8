// Replaces a file so that a reader, a crash or a power cut sees either the
// old contents or the new, never a mix: writes a uniquely named temporary
// file beside it (mkstemp, so processes sharing the folder from different
// containers, each pid 1, never collide), fsyncs it, renames it over the
// target and fsyncs the folder so the rename itself is durable. Used for
// version_policy.json. No shared state: safe from any thread; two writers
// of the same path each land whole, the last rename wins.
#ifndef MATID_COMMON_ATOMIC_FILE_H_
#define MATID_COMMON_ATOMIC_FILE_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace matid {

// PERMISSION_DENIED when the folder cannot be written in, INTERNAL when a
// write, fsync or rename fails; each names the path and the system's
// reason, and leaves no temporary file behind.
inline absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents,
                                        mode_t mode = 0644) {
  std::string staging = path + ".tmp-XXXXXX";
  const int fd = mkostemp(staging.data(), O_CLOEXEC);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  const char* failed = nullptr;
  if (fchmod(fd, mode) != 0) failed = "fchmod";
  size_t done = 0;
  while (failed == nullptr && done < contents.size()) {
    const ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n == 0 || errno != EINTR) {
      failed = "write";
    }
  }
  if (failed == nullptr && fsync(fd) != 0) failed = "fsync";
  if (close(fd) != 0 && failed == nullptr) failed = "close";
  if (failed == nullptr && rename(staging.c_str(), path.c_str()) != 0) failed = "rename";
  if (failed != nullptr) {
    const int error = errno;
    unlink(staging.c_str());
    return absl::InternalError(
        absl::StrCat("cannot write ", path, ": ", failed, ": ", std::strerror(error)));
  }
  std::string folder = std::filesystem::path(path).parent_path().string();
  if (folder.empty()) folder = ".";
  const int dir = open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0 || fsync(dir) != 0) {
    const int error = errno;
    if (dir >= 0) close(dir);
    return absl::InternalError(
        absl::StrCat("wrote ", path, " but cannot fsync its folder: ", std::strerror(error)));
  }
  close(dir);
  return absl::OkStatus();
}

}  // namespace matid

#endif  // MATID_COMMON_ATOMIC_FILE_H_
