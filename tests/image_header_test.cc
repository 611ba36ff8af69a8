#include "common/image_header.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "gtest/gtest.h"

namespace matid {
namespace {

std::string Encode(int width, int height, const std::string& extension) {
  cv::Mat picture(height, width, CV_8UC3, cv::Scalar(10, 20, 30));
  std::vector<uint8_t> bytes;
  EXPECT_TRUE(cv::imencode(extension, picture, bytes));
  return std::string(bytes.begin(), bytes.end());
}

class ImageHeader : public ::testing::TestWithParam<std::string> {};

TEST_P(ImageHeader, ReadsWidthAndHeightOfARealFile) {
  const std::string bytes = Encode(123, 45, GetParam());
  auto dims = ReadImageDimensions(bytes);
  ASSERT_TRUE(dims.has_value());
  EXPECT_EQ(dims->width, 123);
  EXPECT_EQ(dims->height, 45);
}

INSTANTIATE_TEST_SUITE_P(Formats, ImageHeader, ::testing::Values(".png", ".jpg", ".bmp"));

TEST(ImageHeaderUnknown, ReturnsNothingForOtherOrCutShortData) {
  EXPECT_FALSE(ReadImageDimensions("").has_value());
  EXPECT_FALSE(ReadImageDimensions("hello world, not an image").has_value());
  const std::string png = Encode(10, 10, ".png");
  EXPECT_FALSE(ReadImageDimensions(png.substr(0, 12)).has_value());
  const std::string jpeg = Encode(10, 10, ".jpg");
  EXPECT_FALSE(ReadImageDimensions(jpeg.substr(0, 6)).has_value());
}

TEST(ImageHeaderUnknown, ReadsGifLogicalScreenSize) {
  const std::string gif = std::string("GIF89a") +
                          "\x10\x27"
                          "\x20\x4e"
                          "rest";
  auto dims = ReadImageDimensions(gif);
  ASSERT_TRUE(dims.has_value());
  EXPECT_EQ(dims->width, 10000);
  EXPECT_EQ(dims->height, 20000);
}

}  // namespace
}  // namespace matid
