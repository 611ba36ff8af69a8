#include "server/core/preprocessor.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/refusal.h"
#include "tests/test_paths.h"

namespace matid {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

InputSpec Spec(int width, int height, ColorMode color, ResizeMode resize) {
  InputSpec spec;
  spec.width = width;
  spec.height = height;
  spec.color = color;
  spec.resize = resize;
  if (color == ColorMode::kGray) {
    spec.mean = {0.286f};
    spec.std = {0.353f};
  } else {
    spec.mean = {0.485f, 0.456f, 0.406f};
    spec.std = {0.229f, 0.224f, 0.225f};
  }
  return spec;
}

// A deterministic test picture: gradients plus noise, so resizing and
// channel order both show in the numbers.
cv::Mat TestPicture(int width, int height, int channels, uint64_t seed) {
  cv::Mat picture(height, width, channels == 1 ? CV_8UC1 : CV_8UC3);
  cv::RNG rng(seed);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        const int value = (x * 255 / std::max(1, width - 1) * (c + 1) +
                           y * 97 / std::max(1, height - 1) + rng.uniform(0, 40)) %
                          256;
        picture.ptr<uint8_t>(y)[x * channels + c] = static_cast<uint8_t>(value);
      }
    }
  }
  return picture;
}

std::string Encode(const cv::Mat& picture, const std::string& extension) {
  std::vector<uint8_t> bytes;
  EXPECT_TRUE(cv::imencode(extension, picture, bytes));
  return std::string(bytes.begin(), bytes.end());
}

std::string ReadAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream content;
  content << file.rdbuf();
  return content.str();
}

std::string SpecJson(const InputSpec& spec) {
  return absl::StrCat("{\"width\":", spec.width, ",\"height\":", spec.height, ",\"color\":\"",
                      ColorModeName(spec.color), "\",\"resize\":\"", ResizeModeName(spec.resize),
                      "\",\"mean\":[", absl::StrJoin(spec.mean, ","), "],\"std\":[",
                      absl::StrJoin(spec.std, ","), "]}");
}

TEST(Preprocessor, MatchesPythonOpenCvReference) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "preprocess_reference";
  fs::remove_all(dir);
  fs::create_directories(dir);

  struct Case {
    std::string name;
    cv::Mat picture;
    std::string extension;
    InputSpec spec;
  };
  const std::vector<Case> cases = {
      {"gray_same_size", TestPicture(28, 28, 1, 1), ".png",
       Spec(28, 28, ColorMode::kGray, ResizeMode::kStretch)},
      {"gray_shrink", TestPicture(90, 61, 1, 2), ".png",
       Spec(28, 28, ColorMode::kGray, ResizeMode::kStretch)},
      {"gray_from_color_jpeg", TestPicture(64, 48, 3, 3), ".jpg",
       Spec(28, 28, ColorMode::kGray, ResizeMode::kStretch)},
      {"rgb_grow", TestPicture(13, 9, 3, 4), ".png",
       Spec(32, 32, ColorMode::kRgb, ResizeMode::kStretch)},
      {"rgb_center_crop", TestPicture(100, 57, 3, 5), ".png",
       Spec(24, 24, ColorMode::kRgb, ResizeMode::kCenterCrop)},
      {"rgb_letterbox", TestPicture(100, 57, 3, 6), ".bmp",
       Spec(24, 16, ColorMode::kRgb, ResizeMode::kLetterbox)},
      {"rgb_from_gray", TestPicture(40, 40, 1, 7), ".png",
       Spec(20, 30, ColorMode::kRgb, ResizeMode::kLetterbox)},
      {"gray_center_crop_jpeg", TestPicture(31, 77, 1, 8), ".jpg",
       Spec(28, 28, ColorMode::kGray, ResizeMode::kCenterCrop)},
      // Over twice the input: the default options would decode it at 1/2.
      {"rgb_large_jpeg", TestPicture(200, 120, 3, 9), ".jpg",
       Spec(48, 48, ColorMode::kRgb, ResizeMode::kStretch)},
  };

  std::string jobs = "[";
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string image = (dir / (cases[i].name + cases[i].extension)).string();
    ASSERT_TRUE(cv::imwrite(image, cases[i].picture));
    absl::StrAppend(&jobs, i ? "," : "", "{\"image\":\"", image, "\",\"out\":\"",
                    (dir / (cases[i].name + ".f32")).string(),
                    "\",\"spec\":", SpecJson(cases[i].spec), "}");
  }
  jobs += "]";
  std::ofstream(dir / "jobs.json") << jobs;
  const std::string command = absl::StrCat(
      kPython, " ", kSourceDir, "/tests/reference_preprocess.py ", (dir / "jobs.json").string());
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string bytes = ReadAll((dir / (c.name + c.extension)).string());
    Preprocessor preprocessor(c.spec, {.reduced_jpeg_decode = false});
    auto ours = preprocessor.Run(ImageRef::Encoded(bytes));
    ASSERT_TRUE(ours.ok()) << ours.status();
    const std::string reference = ReadAll((dir / (c.name + ".f32")).string());
    ASSERT_EQ(reference.size(), ours->size() * sizeof(float));
    const float* expected = reinterpret_cast<const float*>(reference.data());
    float worst = 0;
    for (size_t i = 0; i < ours->size(); ++i) {
      worst = std::max(worst, std::abs((*ours)[i] - expected[i]));
    }
    EXPECT_LE(worst, 1e-5f);
  }
}

TEST(Preprocessor, RawPixelsMatchTheSameImageEncodedLosslessly) {
  const cv::Mat bgr = TestPicture(50, 35, 3, 11);
  const InputSpec spec = Spec(24, 24, ColorMode::kRgb, ResizeMode::kCenterCrop);
  Preprocessor preprocessor(spec, {});
  auto from_png = preprocessor.Run(ImageRef::Encoded(Encode(bgr, ".png")));
  ASSERT_TRUE(from_png.ok()) << from_png.status();

  const std::string bgr_bytes(reinterpret_cast<const char*>(bgr.data), bgr.total() * 3);
  auto from_bgr = preprocessor.Run(ImageRef::Raw({50, 35, PixelFormat::kBgr8, bgr_bytes}));
  ASSERT_TRUE(from_bgr.ok()) << from_bgr.status();
  EXPECT_EQ(*from_bgr, *from_png);

  std::string rgb_bytes = bgr_bytes;
  for (size_t i = 0; i < rgb_bytes.size(); i += 3) std::swap(rgb_bytes[i], rgb_bytes[i + 2]);
  auto from_rgb = preprocessor.Run(ImageRef::Raw({50, 35, PixelFormat::kRgb8, rgb_bytes}));
  ASSERT_TRUE(from_rgb.ok()) << from_rgb.status();
  EXPECT_EQ(*from_rgb, *from_png);
}

TEST(Preprocessor, APreprocessedTensorIsUsedAsItIs) {
  const InputSpec spec = Spec(24, 24, ColorMode::kRgb, ResizeMode::kCenterCrop);
  Preprocessor preprocessor(spec, {});
  auto reference = preprocessor.Run(ImageRef::Encoded(Encode(TestPicture(50, 35, 3, 12), ".png")));
  ASSERT_TRUE(reference.ok()) << reference.status();
  const std::string bytes(reinterpret_cast<const char*>(reference->data()),
                          reference->size() * sizeof(float));
  auto copied = preprocessor.Run(ImageRef::Tensor(bytes));
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(*copied, *reference);

  absl::Status short_tensor = preprocessor.Run(ImageRef::Tensor(bytes.substr(4))).status();
  EXPECT_EQ(short_tensor.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(short_tensor.message()), HasSubstr("the model takes 3x24x24 float32"));
}

TEST(Preprocessor, ReducedDecodeFactorKeepsAtLeastTheModelInput) {
  EXPECT_EQ(ReducedDecodeFactor(1920, 1080, 224, 224), 4);
  EXPECT_EQ(ReducedDecodeFactor(1920, 1080, 28, 28), 8);
  EXPECT_EQ(ReducedDecodeFactor(448, 448, 224, 224), 2);
  EXPECT_EQ(ReducedDecodeFactor(447, 1000, 224, 224), 1);
  EXPECT_EQ(ReducedDecodeFactor(224, 224, 224, 224), 1);
}

// Mean and largest difference between two tensors, in 8-bit pixel steps.
std::pair<double, double> PixelDifference(const std::vector<float>& a, const std::vector<float>& b,
                                          const InputSpec& spec) {
  const size_t plane = static_cast<size_t>(spec.width) * spec.height;
  double sum = 0, largest = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double steps = std::abs(a[i] - b[i]) * spec.std[i / plane] * 255.0;
    sum += steps;
    largest = std::max(largest, steps);
  }
  return {sum / a.size(), largest};
}

TEST(Preprocessor, ReducedDecodeLeavesSmallJpegsAndOtherFormatsAlone) {
  const InputSpec spec = Spec(224, 224, ColorMode::kRgb, ResizeMode::kStretch);
  Preprocessor full(spec, {.reduced_jpeg_decode = false});
  Preprocessor reduced(spec, {.reduced_jpeg_decode = true});
  for (const std::string& bytes : {Encode(TestPicture(400, 300, 3, 21), ".jpg"),
                                   Encode(TestPicture(1920, 1080, 3, 22), ".png")}) {
    auto expected = full.Run(ImageRef::Encoded(bytes));
    auto actual = reduced.Run(ImageRef::Encoded(bytes));
    ASSERT_TRUE(expected.ok() && actual.ok());
    EXPECT_EQ(*actual, *expected);
  }
}

// A 1080p JPEG decoded at 1/4 (colour, 224x224 model) or 1/8 (gray, 28x28)
// scale, then fitted, stays close to the full decode. Measured on this
// picture, whose per-pixel noise is the worst case for a scaled DCT: colour
// mean 1.90 / max 34 steps, gray mean 0.19 / max 1 (OpenCV 4.6,
// libjpeg-turbo 2.1); the bounds are those figures with about 50% margin.
TEST(Preprocessor, ReducedDecodeStaysWithinTheMeasuredBound) {
  for (ColorMode color : {ColorMode::kRgb, ColorMode::kGray}) {
    const InputSpec spec = color == ColorMode::kRgb ? Spec(224, 224, color, ResizeMode::kStretch)
                                                    : Spec(28, 28, color, ResizeMode::kStretch);
    const std::string jpeg = Encode(TestPicture(1920, 1080, 3, 23), ".jpg");
    auto expected = Preprocessor(spec, {.reduced_jpeg_decode = false}).Run(ImageRef::Encoded(jpeg));
    auto actual = Preprocessor(spec, {}).Run(ImageRef::Encoded(jpeg));  // reduced by default
    ASSERT_TRUE(expected.ok() && actual.ok());
    const auto [mean, largest] = PixelDifference(*expected, *actual, spec);
    std::printf("reduced decode, %s: mean %.2f, max %.1f pixel steps\n",
                std::string(ColorModeName(color)).c_str(), mean, largest);
    EXPECT_GT(mean, 0.0) << "the reduced path was not taken";
    EXPECT_LT(mean, color == ColorMode::kRgb ? 3.0 : 0.3);
    EXPECT_LT(largest, color == ColorMode::kRgb ? 50.0 : 2.0);
  }
}

TEST(Preprocessor, NormalisesWithMeanAndStd) {
  InputSpec spec = Spec(2, 2, ColorMode::kGray, ResizeMode::kStretch);
  spec.mean = {0.5f};
  spec.std = {0.25f};
  Preprocessor preprocessor(spec, {});
  const std::string pixels = {0, 0, char(255), char(255)};
  auto out = preprocessor.Run(ImageRef::Raw({2, 2, PixelFormat::kGray8, pixels}));
  ASSERT_TRUE(out.ok());
  EXPECT_FLOAT_EQ((*out)[0], -2.0f);
  EXPECT_FLOAT_EQ((*out)[3], 2.0f);
}

class PreprocessorRefuses : public ::testing::Test {
 protected:
  absl::Status RunEncoded(const std::string& bytes, PreprocessOptions options = {}) {
    Preprocessor preprocessor(Spec(28, 28, ColorMode::kGray, ResizeMode::kStretch), options);
    return preprocessor.Run(ImageRef::Encoded(bytes)).status();
  }
  absl::Status RunRaw(RawPixels raw, PreprocessOptions options = {}) {
    Preprocessor preprocessor(Spec(28, 28, ColorMode::kGray, ResizeMode::kStretch), options);
    return preprocessor.Run(ImageRef::Raw(raw)).status();
  }
};

TEST_F(PreprocessorRefuses, EmptyBytes) {
  absl::Status status = RunEncoded("");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("empty"));
  EXPECT_EQ(RefusalReason(status), "empty_image");
}

TEST_F(PreprocessorRefuses, RandomBytes) {
  cv::RNG rng(5);
  std::string noise(1000, '\0');
  for (char& c : noise) c = static_cast<char>(rng.uniform(0, 256));
  absl::Status status = RunEncoded(noise);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("could not read the image size"));
  EXPECT_EQ(RefusalReason(status), "unchecked_format");
  PreprocessOptions decode_anything;
  decode_anything.decode_unchecked_formats = true;
  status = RunEncoded(noise, decode_anything);
  EXPECT_THAT(status.message(), HasSubstr("could not decode"));
  EXPECT_EQ(RefusalReason(status), "undecodable");
}

// A PGM's size is read only by the decoder, which allocates first: refused
// unless asked for; decoded when asked for.
TEST_F(PreprocessorRefuses, FormatsWithoutASizeCheckOnlyWhenAskedFor) {
  const std::string pgm = Encode(TestPicture(28, 28, 1, 3), ".pgm");
  absl::Status status = RunEncoded(pgm);
  EXPECT_EQ(RefusalReason(status), "unchecked_format");
  PreprocessOptions decode_anything;
  decode_anything.decode_unchecked_formats = true;
  EXPECT_TRUE(RunEncoded(pgm, decode_anything).ok());
}

// A valid 1x1 GIF: refused with the reason (no GIF decoder in OpenCV 4.6),
// not as corrupt.
TEST_F(PreprocessorRefuses, GifSaysThereIsNoGifDecoder) {
  const std::string gif(
      "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00"
      "\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02"
      "D\x01\x00;",
      43);
  absl::Status status = RunEncoded(gif);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("no GIF decoder"));
  EXPECT_THAT(status.message(), Not(HasSubstr("corrupt")));
  EXPECT_EQ(RefusalReason(status), "unsupported_format");
}

TEST_F(PreprocessorRefuses, TruncatedPng) {
  const std::string png = Encode(TestPicture(64, 64, 1, 3), ".png");
  absl::Status status = RunEncoded(png.substr(0, png.size() / 2));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("png"));
}

TEST_F(PreprocessorRefuses, PngWhoseHeaderClaimsTooManyPixels) {
  std::string png = Encode(TestPicture(8, 8, 1, 3), ".png");
  // Claim 50000 x 50000 in IHDR; must be refused before decoding.
  const unsigned char side[4] = {0x00, 0x00, 0xC3, 0x50};
  png.replace(16, 4, reinterpret_cast<const char*>(side), 4);
  png.replace(20, 4, reinterpret_cast<const char*>(side), 4);
  absl::Status status = RunEncoded(png);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("50000x50000"));
  EXPECT_EQ(RefusalReason(status), "too_many_pixels");
  EXPECT_THAT(status.message(), HasSubstr("--max_image_pixels"));
}

TEST_F(PreprocessorRefuses, DecodedImageOverThePixelLimit) {
  const std::string png = Encode(TestPicture(100, 100, 1, 3), ".png");
  absl::Status status = RunEncoded(png, {.max_image_pixels = 5000});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("the limit is 5000"));
}

TEST_F(PreprocessorRefuses, EncodedBytesOverTheLimit) {
  absl::Status status = RunEncoded(std::string(2000, 'x'), {.max_encoded_bytes = 1000});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("limit is 1000"));
  EXPECT_EQ(RefusalReason(status), "encoded_too_large");
}

TEST_F(PreprocessorRefuses, ZeroSizeRawImage) {
  absl::Status status = RunRaw({0, 10, PixelFormat::kGray8, ""});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("0x10"));
  EXPECT_EQ(RefusalReason(status), "zero_size");
}

TEST_F(PreprocessorRefuses, RawPixelsOfTheWrongLength) {
  absl::Status status = RunRaw({4, 4, PixelFormat::kRgb8, std::string(47, '\0')});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("needs 48 bytes"));
  EXPECT_EQ(RefusalReason(status), "raw_size_mismatch");
}

TEST_F(PreprocessorRefuses, RawImageOverThePixelLimit) {
  absl::Status status = RunRaw({100000, 100000, PixelFormat::kGray8, "x"});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("pixels; the limit is"));
}

// Found by preprocess_fuzzer: the message multiplied the claimed sides, which
// overflows int64 for a header claiming ~2^32 x 2^32 (UBSan: signed overflow).
TEST_F(PreprocessorRefuses, HugeClaimedSidesAreRefusedWithoutOverflow) {
  absl::Status status = RunRaw({3907578088, 3907578088, PixelFormat::kGray8, "x"});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("3907578088x3907578088 pixels; the limit is"));
  EXPECT_EQ(RefusalReason(status), "too_many_pixels");
}

}  // namespace
}  // namespace matid
