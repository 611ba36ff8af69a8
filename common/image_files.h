// Finds the image files a user named on the command line: files as given,
// directories searched recursively for image extensions. Pure function of the
// file system; safe from any thread.
#ifndef MATID_COMMON_IMAGE_FILES_H_
#define MATID_COMMON_IMAGE_FILES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace matid {

// Files named directly are kept whatever their extension; inside directories
// only .jpg .jpeg .png .bmp .gif .tif .tiff .webp .pgm .ppm (any case) are
// taken. Directory contents are sorted, so runs are repeatable. NOT_FOUND
// when a path does not exist.
absl::StatusOr<std::vector<std::string>> FindImageFiles(const std::vector<std::string>& paths);

}  // namespace matid

#endif  // MATID_COMMON_IMAGE_FILES_H_
