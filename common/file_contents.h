// Reads a whole file into a string (bytes as they are). One helper for the
// model metadata, TLS certificates and keys, and images read by the tools.
// Pure function, safe from any thread.
#ifndef MATID_COMMON_FILE_CONTENTS_H_
#define MATID_COMMON_FILE_CONTENTS_H_

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

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

}  // namespace matid

#endif  // MATID_COMMON_FILE_CONTENTS_H_
