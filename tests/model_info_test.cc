#include "server/backend/model_info.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ModelMetadata, ParsesTheExportersFormat) {
  auto info = ParseModelMetadata(R"({
    "name": "fmnist", "version": "3", "labels": ["a", "b", "c"],
    "input": {"width": 32, "height": 24, "channels": 3, "color": "rgb",
              "resize": "center_crop", "mean": [0.1, 0.2, 0.3], "std": [0.5]},
    "qengine": "onednn", "trained_at": "2026-11-25T00:00:00Z",
    "metrics": {"accuracy": 0.93}, "future_field": {"x": 1}})");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name, "fmnist");
  EXPECT_EQ(info->version, "3");
  EXPECT_THAT(info->labels, ElementsAre("a", "b", "c"));
  EXPECT_EQ(info->input.width, 32);
  EXPECT_EQ(info->input.height, 24);
  EXPECT_EQ(info->input.channels(), 3);
  EXPECT_EQ(info->input.resize, ResizeMode::kCenterCrop);
  EXPECT_THAT(info->input.mean, ElementsAre(0.1f, 0.2f, 0.3f));
  EXPECT_THAT(info->input.std, ElementsAre(0.5f, 0.5f, 0.5f));  // one for all
  EXPECT_FALSE(info->outputs_probabilities);
}

TEST(ModelMetadata, DefaultsToGrayStretchWithoutNormalisation) {
  auto info = ParseModelMetadata(R"({"labels": ["x"], "input": {"width": 28, "height": 28}})");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->input.color, ColorMode::kGray);
  EXPECT_EQ(info->input.resize, ResizeMode::kStretch);
  EXPECT_THAT(info->input.mean, ElementsAre(0.0f));
  EXPECT_THAT(info->input.std, ElementsAre(1.0f));
}

struct BadMetadata {
  const char* json;
  const char* says;
};

class ModelMetadataRefuses : public ::testing::TestWithParam<BadMetadata> {};

TEST_P(ModelMetadataRefuses, WithAMessageNamingTheField) {
  auto info = ParseModelMetadata(GetParam().json);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr(GetParam().says));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ModelMetadataRefuses,
    ::testing::Values(
        BadMetadata{"not json", "not valid"},
        BadMetadata{R"({"input": {"width": 28, "height": 28}})", "labels"},
        BadMetadata{R"({"labels": ["a"], "input": {"width": 0, "height": 28}})", "input size"},
        BadMetadata{R"({"labels": ["a"], "input": {"width": 28, "height": 28, "color": "cmyk"}})",
                    "color"},
        BadMetadata{R"({"labels": ["a"], "input": {"width": 28, "height": 28, "resize": "zoom"}})",
                    "resize"},
        BadMetadata{R"({"labels": ["a"], "input": {"width": 28, "height": 28, "std": [0]}})",
                    "std"},
        BadMetadata{
            R"({"labels": ["a"], "input": {"width": 28, "height": 28, "color": "rgb", "mean": [1, 2]}})",
            "mean"},
        BadMetadata{
            R"({"labels": ["a"], "input": {"width": 28, "height": 28, "channels": 3, "color": "gray"}})",
            "channels"},
        BadMetadata{R"({"labels": ["a"], "input": {"width": 28, "height": 28}, "output": "votes"})",
                    "output"}));

TEST(ModelMetadata, MissingFileIsNotFound) {
  auto info = LoadModelMetadata("/nonexistent/model");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(info.status().message(), HasSubstr("/nonexistent/model/metadata.json"));
}

}  // namespace
}  // namespace matid
