// Images for the benchmarks, as encoded bytes ready to send or decode: every
// image file of a folder, or random synthetic pictures of a given size
// (PNG up to 64x64, JPEG above, like camera frames). Pure functions.
#ifndef MATID_BENCH_BENCH_IMAGES_H_
#define MATID_BENCH_BENCH_IMAGES_H_

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/file_contents.h"
#include "common/image_files.h"

namespace matid {

inline std::vector<std::string> LoadEncodedImages(const std::string& folder) {
  std::vector<std::string> images;
  auto files = FindImageFiles({folder});
  if (!files.ok()) return images;
  for (const auto& path : *files) {
    absl::StatusOr<std::string> bytes = ReadFileContents(path);
    if (bytes.ok()) images.push_back(*std::move(bytes));
  }
  return images;
}

// `size` is "WxHxC"; when it does not parse, the defaults are kept.
inline std::vector<std::string> SyntheticEncodedImages(const std::string& size, int count,
                                                       int width = 28, int height = 28,
                                                       int channels = 1) {
  std::vector<std::string> parts = absl::StrSplit(size, 'x');
  if (parts.size() == 3) {
    (void)absl::SimpleAtoi(parts[0], &width);
    (void)absl::SimpleAtoi(parts[1], &height);
    (void)absl::SimpleAtoi(parts[2], &channels);
  }
  std::vector<std::string> images;
  cv::RNG rng(1);
  for (int i = 0; i < count; ++i) {
    cv::Mat picture(height, width, channels == 1 ? CV_8UC1 : CV_8UC3);
    rng.fill(picture, cv::RNG::UNIFORM, 0, 256);
    std::vector<uint8_t> bytes;
    cv::imencode(width * height > 64 * 64 ? ".jpg" : ".png", picture, bytes);
    images.emplace_back(bytes.begin(), bytes.end());
  }
  return images;
}

}  // namespace matid

#endif  // MATID_BENCH_BENCH_IMAGES_H_
