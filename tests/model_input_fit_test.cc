// Fitting images to a model's input: what a client sends after
// ShrinkForModel fits to exactly the same pixels as the full image would,
// for every resize mode, so the camera's shrinking changes nothing but the
// bytes on the wire (JPEG aside).
#include "common/model_input_fit.h"

#include <opencv2/core.hpp>

#include "gtest/gtest.h"

namespace matid {
namespace {

cv::Mat RandomImage(cv::Size size, int type, int seed) {
  cv::Mat image(size, type);
  cv::RNG rng(seed);
  rng.fill(image, cv::RNG::UNIFORM, 0, 256);
  return image;
}

TEST(ModelInputFit, FittingTheShrunkImageEqualsFittingTheFullOne) {
  const cv::Size sources[] = {{1920, 1080}, {1080, 1920}, {640, 480}, {300, 300}, {57, 31}};
  const cv::Size targets[] = {{224, 224}, {28, 28}, {24, 16}};
  int seed = 0;
  for (ResizeMode mode : {ResizeMode::kStretch, ResizeMode::kCenterCrop, ResizeMode::kLetterbox}) {
    for (cv::Size source : sources) {
      for (cv::Size target : targets) {
        for (int type : {CV_8UC1, CV_8UC3}) {
          SCOPED_TRACE(testing::Message() << ResizeModeName(mode) << " " << source << " -> "
                                          << target << " channels " << CV_MAT_CN(type));
          const cv::Mat full = RandomImage(source, type, ++seed);
          const cv::Mat shrunk = ShrinkForModel(full, target.width, target.height, mode);
          EXPECT_LE(shrunk.total(), full.total());
          const cv::Mat expected = FitToModel(full, target.width, target.height, mode);
          const cv::Mat actual = FitToModel(shrunk, target.width, target.height, mode);
          ASSERT_EQ(actual.size(), target);
          EXPECT_EQ(cv::norm(expected, actual, cv::NORM_INF), 0.0);
        }
      }
    }
  }
}

TEST(ModelInputFit, ShrinkGivesWhatTheServerNeedsAndNeverEnlarges) {
  const cv::Mat frame = RandomImage({1920, 1080}, CV_8UC3, 1);
  EXPECT_EQ(ShrinkForModel(frame, 224, 224, ResizeMode::kStretch).size(), cv::Size(224, 224));
  EXPECT_EQ(ShrinkForModel(frame, 224, 224, ResizeMode::kCenterCrop).size(), cv::Size(224, 224));
  EXPECT_EQ(ShrinkForModel(frame, 224, 224, ResizeMode::kLetterbox).size(), cv::Size(224, 126));
  const cv::Mat small = RandomImage({100, 80}, CV_8UC1, 2);
  EXPECT_EQ(ShrinkForModel(small, 224, 224, ResizeMode::kStretch).data, small.data);
  // One axis would grow: the server does the fit.
  const cv::Mat strip = RandomImage({1000, 100}, CV_8UC1, 3);
  EXPECT_EQ(ShrinkForModel(strip, 224, 224, ResizeMode::kStretch).size(), strip.size());
}

TEST(ModelInputFit, ModeNamesRoundTrip) {
  for (ResizeMode mode : {ResizeMode::kStretch, ResizeMode::kCenterCrop, ResizeMode::kLetterbox}) {
    EXPECT_EQ(ParseResizeMode(ResizeModeName(mode)), mode);
  }
  EXPECT_EQ(ParseResizeMode(""), ResizeMode::kStretch);
  EXPECT_EQ(ParseResizeMode("fill"), std::nullopt);
}

}  // namespace
}  // namespace matid
