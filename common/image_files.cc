#include "common/image_files.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"

namespace matid {
namespace {

bool HasImageExtension(const std::filesystem::path& path) {
  static const std::set<std::string> kExtensions = {".jpg", ".jpeg", ".png",  ".bmp", ".gif",
                                                    ".tif", ".tiff", ".webp", ".pgm", ".ppm"};
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return kExtensions.count(extension) > 0;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> FindImageFiles(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    std::error_code error;
    const fs::file_status status = fs::status(path, error);
    if (error || !fs::exists(status)) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
    }
    if (!fs::is_directory(status)) {
      files.push_back(path);
      continue;
    }
    std::vector<std::string> found;
    for (fs::recursive_directory_iterator
             it(path, fs::directory_options::skip_permission_denied, error),
         end;
         !error && it != end; it.increment(error)) {
      if (it->is_regular_file(error) && HasImageExtension(it->path())) {
        found.push_back(it->path().string());
      }
    }
    if (error) {
      return absl::UnavailableError(
          absl::StrCat("cannot read directory ", path, ": ", error.message()));
    }
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

}  // namespace matid
