// End-to-end: the real matid-server binary with the tiny TorchScript test
// model, called over loopback by a real gRPC client, /metrics scraped, and
// matid-classify run against it.
#include <grpcpp/create_channel.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/prometheus_text.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "matid/v1/matid.grpc.pb.h"
#include "server/backend/model_files.h"
#include "server/core/refusal.h"
#include "tests/server_process.h"
#include "tests/shared_server_suite.h"
#include "tests/test_paths.h"

namespace matid {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Key;
using ::testing::Pair;

constexpr int kMaxImagePixels = 250'000;

std::string Png(int width, int height, int seed, int channels = 1) {
  cv::Mat picture(height, width, channels == 1 ? CV_8UC1 : CV_8UC3);
  cv::randu(picture, cv::Scalar::all(0), cv::Scalar::all(255));
  cv::RNG rng(seed);
  cv::circle(picture, {width / 2, height / 2}, rng.uniform(2, width / 2),
             cv::Scalar::all(rng.uniform(0, 255)), -1);
  std::vector<uint8_t> bytes;
  cv::imencode(".png", picture, bytes);
  return std::string(bytes.begin(), bytes.end());
}

class ServerEndToEnd : public SharedServerSuite<ServerEndToEnd> {
 protected:
  static void SetUpTestSuite() {
    StartSharedServer({absl::StrCat("--model_dir=", kTestModelDir), "--threads=1",
                       absl::StrCat("--max_image_pixels=", kMaxImagePixels),
                       "--max_message_bytes=1048576", "--max_batch_items=16"});
  }

  void SetUp() override {
    channel_ = SharedChannel();
    ASSERT_NE(channel_, nullptr);
    stub_ = v1::Classifier::NewStub(channel_);
  }

  grpc::Status Classify(const v1::ClassifyRequest& request, v1::ClassifyResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->Classify(&context, request, response);
  }

  grpc::Status ClassifyEncoded(const std::string& bytes, v1::ClassifyResponse* response) {
    v1::ClassifyRequest request;
    request.mutable_image()->set_encoded(bytes);
    return Classify(request, response);
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
};

TEST_F(ServerEndToEnd, ClassifyReturnsTopKLabelsOfTheModel) {
  v1::ClassifyRequest request;
  request.mutable_image()->set_encoded(Png(28, 28, 1));
  request.set_top_k(3);
  request.set_request_id("req-1");
  (*request.mutable_tags())["camera"] = "cam-7";
  v1::ClassifyResponse response;
  grpc::Status status = Classify(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.request_id(), "req-1");
  EXPECT_EQ(response.tags().at("camera"), "cam-7");
  ASSERT_EQ(response.predictions_size(), 3);
  const std::vector<std::string> labels = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                           "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                           "Bag",         "Ankle boot"};
  for (int i = 0; i < 3; ++i) {
    const auto& p = response.predictions(i);
    EXPECT_EQ(p.label(), labels.at(p.index()));
    EXPECT_GT(p.score(), 0.0f);
    EXPECT_LE(p.score(), 1.0f);
    if (i > 0) {
      EXPECT_GE(response.predictions(i - 1).score(), p.score());
    }
  }
  EXPECT_EQ(response.model().name(), "matid-test-model");
  EXPECT_EQ(response.model().variant(), "fp32");
  EXPECT_EQ(response.model().version(), "random-seed7");
  EXPECT_EQ(response.model().sha256().size(), 12u);
  EXPECT_EQ(response.timings().batch_size(), 1u);
  EXPECT_GT(response.timings().total_us(), 0);
  EXPECT_GE(response.timings().total_us(), response.timings().inference_us());
}

TEST_F(ServerEndToEnd, ScoresOfAllLabelsSumToOne) {
  v1::ClassifyRequest request;
  request.mutable_image()->set_encoded(Png(50, 40, 2, 3));  // colour, other size
  request.set_top_k(100);                                   // capped at the label count
  v1::ClassifyResponse response;
  ASSERT_TRUE(Classify(request, &response).ok());
  ASSERT_EQ(response.predictions_size(), 10);
  float sum = 0;
  for (const auto& p : response.predictions()) sum += p.score();
  EXPECT_NEAR(sum, 1.0f, 1e-4f);
}

TEST_F(ServerEndToEnd, RawPixelsGiveTheSameAnswerAsTheEncodedImage) {
  cv::Mat picture(28, 28, CV_8UC1);
  cv::randu(picture, 0, 255);
  std::vector<uint8_t> png;
  cv::imencode(".png", picture, png);
  v1::ClassifyResponse from_png, from_raw;
  ASSERT_TRUE(ClassifyEncoded(std::string(png.begin(), png.end()), &from_png).ok());
  v1::ClassifyRequest request;
  v1::RawImage* raw = request.mutable_image()->mutable_raw();
  raw->set_width(28);
  raw->set_height(28);
  raw->set_format(v1::PIXEL_FORMAT_GRAY8);
  raw->set_pixels(std::string(reinterpret_cast<char*>(picture.data), 28 * 28));
  ASSERT_TRUE(Classify(request, &from_raw).ok());
  ASSERT_EQ(from_png.predictions_size(), from_raw.predictions_size());
  for (int i = 0; i < from_png.predictions_size(); ++i) {
    EXPECT_EQ(from_png.predictions(i).index(), from_raw.predictions(i).index());
    EXPECT_FLOAT_EQ(from_png.predictions(i).score(), from_raw.predictions(i).score());
  }
}

TEST_F(ServerEndToEnd, BatchClassifyIsolatesTheOneBadItem) {
  v1::BatchClassifyRequest request;
  for (int i = 0; i < 5; ++i) {
    v1::ClassifyRequest* item = request.add_items();
    item->set_request_id(absl::StrCat("item-", i));
    item->mutable_image()->set_encoded(i == 2 ? std::string("definitely not an image")
                                              : Png(28, 28, 10 + i));
  }
  v1::BatchClassifyResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub_->BatchClassify(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 5);
  for (int i = 0; i < 5; ++i) {
    const auto& result = response.results(i);
    EXPECT_EQ(result.response().request_id(), absl::StrCat("item-", i));
    if (i == 2) {
      EXPECT_EQ(result.status().code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_THAT(result.status().message(), HasSubstr("could not read the image size"));
    } else {
      EXPECT_EQ(result.status().code(), 0) << result.status().message();
      EXPECT_EQ(result.response().predictions_size(), 5);  // server default top-k
    }
  }
}

TEST_F(ServerEndToEnd, BatchClassifyOverTheItemLimitIsRefused) {
  v1::BatchClassifyRequest request;
  const std::string png = Png(28, 28, 3);
  for (int i = 0; i < 17; ++i) request.add_items()->mutable_image()->set_encoded(png);
  v1::BatchClassifyResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub_->BatchClassify(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("limit is 16"));
}

TEST_F(ServerEndToEnd, ClassifyStreamAnswersEveryFrameInOrderWithItsSeq) {
  grpc::ClientContext context;
  auto stream = stub_->ClassifyStream(&context);
  constexpr int kFrames = 60;
  std::vector<v1::FrameResult> results;
  std::thread reader([&] {
    v1::FrameResult result;
    while (stream->Read(&result)) results.push_back(result);
  });
  for (int i = 0; i < kFrames; ++i) {
    v1::Frame frame;
    frame.set_seq(1000 + i);
    frame.set_top_k(1);
    frame.mutable_image()->set_encoded(i % 7 == 3 ? std::string("junk") : Png(28, 28, i));
    ASSERT_TRUE(stream->Write(frame));
  }
  stream->WritesDone();
  reader.join();
  grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(results.size(), static_cast<size_t>(kFrames));
  for (int i = 0; i < kFrames; ++i) {
    EXPECT_EQ(results[i].seq(), static_cast<uint64_t>(1000 + i));
    if (i % 7 == 3) {
      EXPECT_EQ(results[i].status().code(), grpc::StatusCode::INVALID_ARGUMENT);
    } else {
      EXPECT_EQ(results[i].status().code(), 0) << results[i].status().message();
      EXPECT_EQ(results[i].predictions_size(), 1);
    }
  }
}

TEST_F(ServerEndToEnd, HealthDescribesModelAndQueue) {
  v1::HealthResponse health;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->Health(&context, v1::HealthRequest(), &health).ok());
  EXPECT_EQ(health.state(), v1::HealthResponse::SERVING);
  EXPECT_EQ(health.model().name(), "matid-test-model");
  EXPECT_EQ(health.model().labels_size(), 10);
  EXPECT_EQ(health.model().input().width(), 28u);
  EXPECT_EQ(health.model().input().height(), 28u);
  EXPECT_EQ(health.model().input().channels(), 1u);
  EXPECT_EQ(health.model().input().color(), "gray");
  EXPECT_GT(health.uptime_seconds(), 0.0);
  EXPECT_EQ(health.max_batch_size(), 8u);
  EXPECT_EQ(health.max_queue_size(), 128u);
}

TEST_F(ServerEndToEnd, StandardGrpcHealthServiceSaysServing) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const char* service : {"", "matid.v1.Classifier"}) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext context;
    grpc::Status status = health->Check(&context, request, &response);
    ASSERT_TRUE(status.ok()) << service << ": " << status.error_message();
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
}

struct BadInput {
  std::string name;
  v1::Image image;
  std::string says;
};

std::vector<BadInput> BadInputs() {
  std::vector<BadInput> cases;
  auto encoded = [](const std::string& bytes) {
    v1::Image image;
    image.set_encoded(bytes);
    return image;
  };
  auto raw = [](uint32_t w, uint32_t h, v1::PixelFormat format, size_t bytes) {
    v1::Image image;
    image.mutable_raw()->set_width(w);
    image.mutable_raw()->set_height(h);
    image.mutable_raw()->set_format(format);
    image.mutable_raw()->set_pixels(std::string(bytes, '\x7f'));
    return image;
  };
  cases.push_back({"empty bytes", encoded(""), "empty"});
  std::string noise(4096, '\0');
  cv::RNG rng(9);
  for (char& c : noise) c = static_cast<char>(rng.uniform(0, 256));
  cases.push_back({"random bytes", encoded(noise), "could not read the image size"});
  const std::string png = Png(64, 64, 4);
  cases.push_back({"truncated png", encoded(png.substr(0, png.size() / 3)), "could not decode"});
  cases.push_back(
      {"zero-size raw image", raw(0, 28, v1::PIXEL_FORMAT_GRAY8, 0), "both sides must be > 0"});
  cases.push_back({"png over the pixel limit", encoded(Png(600, 600, 5)),
                   absl::StrCat("the limit is ", kMaxImagePixels)});
  // PGM's size is not read before decoding: refused unless --decode_unchecked_formats.
  cases.push_back({"pgm (size not checkable before decoding)",
                   encoded("P5\n600 600\n255\n" + noise), "could not read the image size"});
  cases.push_back({"raw over the pixel limit", raw(1000, 1000, v1::PIXEL_FORMAT_GRAY8, 1),
                   absl::StrCat("the limit is ", kMaxImagePixels)});
  cases.push_back({"raw pixels of the wrong length", raw(28, 28, v1::PIXEL_FORMAT_RGB8, 28 * 28),
                   "needs 2352 bytes"});
  cases.push_back(
      {"raw without a format", raw(28, 28, v1::PIXEL_FORMAT_UNSPECIFIED, 28 * 28), "format"});
  cases.push_back({"no image at all", v1::Image(), "image is missing"});
  return cases;
}

TEST_F(ServerEndToEnd, BadInputsGetInvalidArgumentAndTheServerKeepsServing) {
  for (const BadInput& bad : BadInputs()) {
    SCOPED_TRACE(bad.name);
    v1::ClassifyRequest request;
    *request.mutable_image() = bad.image;
    v1::ClassifyResponse response;
    grpc::Status status = Classify(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(bad.says));
    v1::ClassifyResponse good;
    ASSERT_TRUE(ClassifyEncoded(Png(28, 28, 6), &good).ok()) << "server stopped serving";
  }
}

TEST_F(ServerEndToEnd, MessageOverTheSizeLimitGetsResourceExhausted) {
  v1::ClassifyResponse response;
  grpc::Status status = ClassifyEncoded(std::string(2 << 20, 'x'), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  ASSERT_TRUE(ClassifyEncoded(Png(28, 28, 7), &response).ok());
}

TEST_F(ServerEndToEnd, MetricsEndpointExposesRequestsAndLatencyHistograms) {
  v1::ClassifyResponse response;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(ClassifyEncoded(Png(28, 28, 20 + i), &response).ok());
  ClassifyEncoded("junk", &response);

  auto body = HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  auto samples = ParsePrometheusText(*body);
  ASSERT_TRUE(samples.ok()) << samples.status();
  const auto& s = *samples;
  EXPECT_THAT(s, Contains(Pair("matid_requests_total{code=\"OK\",rpc=\"Classify\"}", Ge(5.0))));
  EXPECT_THAT(s, Contains(Pair("matid_requests_total{code=\"INVALID_ARGUMENT\",rpc=\"Classify\"}",
                               Ge(1.0))));
  for (const char* series :
       {"matid_request_duration_seconds_bucket{rpc=\"Classify\",le=\"0.001\"}",
        "matid_request_duration_seconds_bucket{rpc=\"Classify\",le=\"10\"}",
        "matid_request_duration_seconds_count{rpc=\"Classify\"}",
        "matid_queue_wait_seconds_bucket{le=\"0.001\"}", "matid_preprocess_duration_seconds_count",
        "matid_inference_duration_seconds_sum", "matid_batch_size_bucket{le=\"1\"}",
        "matid_batches_total", "matid_queue_depth", "matid_queue_capacity",
        "matid_in_flight_requests", "matid_serving", "matid_images_total{code=\"OK\"}",
        "matid_predictions_total{label=\"Ankle boot\",model=\"matid-test-model\"}",
        "matid_model_version_state{model=\"matid-test-model\",state=\"AVAILABLE\","
        "version=\"random-seed7\"}",
        "matid_model_loads_total{model=\"matid-test-model\",result=\"ok\","
        "version=\"random-seed7\"}"}) {
    EXPECT_THAT(s, Contains(Key(series))) << series;
  }
  // The loaded file's digest names exactly what ran.
  auto digest = FileSha256(absl::StrCat(kTestModelDir, "/model.pt"));
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_THAT(s, Contains(Key(absl::StrCat("matid_model_info{name=\"matid-test-model\",sha256=\"",
                                           digest->substr(0, 12),
                                           "\",variant=\"fp32\",version=\"random-seed7\"}"))));
  EXPECT_GE(s.at("matid_inference_duration_seconds_count"), 5.0);
  EXPECT_GE(s.at("matid_refusals_total{reason=\"undecodable\"}"), 1.0);
  for (absl::string_view reason : kRefusalReasons) {  // exported before the first refusal
    EXPECT_THAT(s, Contains(Key(absl::StrCat("matid_refusals_total{reason=\"", reason, "\"}"))));
  }
  EXPECT_EQ(s.at("matid_serving"), 1.0);
  double predictions = 0;
  for (const auto& [series, value] : s) {
    if (series.rfind("matid_predictions_total{", 0) == 0) predictions += value;
  }
  EXPECT_EQ(predictions, s.at("matid_images_total{code=\"OK\"}"));
}

class ClassifyCli : public ServerEndToEnd {
 protected:
  void SetUp() override {
    ServerEndToEnd::SetUp();
    dir_ = std::filesystem::path(::testing::TempDir()) / "classify_cli";
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "a" / "nested");
    for (int i = 0; i < 12; ++i) {
      const auto path = dir_ / (i % 2 ? "a" : "a/nested") / absl::StrCat("img", i, ".png");
      std::ofstream(path, std::ios::binary) << Png(28, 28, 40 + i);
    }
    std::ofstream(dir_ / "a" / "notes.txt") << "not an image, skipped by extension";
  }
  std::string Cli(const std::string& args) {
    return absl::StrCat(kClassifyBinary, " --server=", server_->address(), " ", args);
  }
  std::filesystem::path dir_;
};

TEST_F(ClassifyCli, ClassifiesADirectoryRecursivelyToCsv) {
  for (const char* mode : {"classify", "batch"}) {
    SCOPED_TRACE(mode);
    CommandResult run = RunCommand(Cli(absl::StrCat(
        "--mode=", mode, " --batch_size=5 --format=csv ", dir_.string(), " 2>/dev/null")));
    EXPECT_EQ(run.exit_code, 0) << run.output;
    std::vector<std::string> lines = absl::StrSplit(run.output, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 13u) << run.output;  // header + 12 images
    EXPECT_EQ(lines[0], "path,status,top_label,top_score,latency_ms,top_k,error");
    for (size_t i = 1; i < lines.size(); ++i) EXPECT_THAT(lines[i], HasSubstr(",OK,"));
  }
}

TEST_F(ClassifyCli, ExitsNonZeroAndGivesTheReasonWhenAnImageFails) {
  std::ofstream(dir_ / "a" / "broken.png") << "this is not a png";
  CommandResult run =
      RunCommand(Cli(absl::StrCat("--format=jsonl ", dir_.string(), " 2>/dev/null")));
  EXPECT_EQ(run.exit_code, 1);
  std::vector<std::string> lines = absl::StrSplit(run.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 13u);
  int failed = 0;
  for (const auto& line : lines) {
    if (line.find("broken.png") != std::string::npos) {
      ++failed;
      EXPECT_THAT(line, AllOf(HasSubstr("\"status\":\"INVALID_ARGUMENT\""),
                              HasSubstr("\"error\":\"could not read the image size")));
    }
  }
  EXPECT_EQ(failed, 1);
}

TEST_F(ClassifyCli, UnreachableServerIsAUsageError) {
  CommandResult run =
      RunCommand(absl::StrCat(kClassifyBinary, " --server=127.0.0.1:1 --connect_timeout_seconds=1 ",
                              dir_.string(), " 2>&1"));
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("cannot reach server"));
}

TEST(ServerProcessLifecycle, SigtermDrainsAndExitsZero) {
  auto server = ServerProcess::Start({absl::StrCat("--model_dir=", kTestModelDir), "--threads=1"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Classifier::NewStub(channel);
  // Keep requests coming while the signal arrives, as a well-behaved client:
  // it stops on UNAVAILABLE (the server said it is draining). Every other
  // request must be answered.
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, unanswered{0};
  std::thread client([&] {
    const std::string png = Png(28, 28, 1);
    for (int i = 0; i < 2000 && !stop.load(); ++i) {
      v1::ClassifyRequest request;
      request.mutable_image()->set_encoded(png);
      v1::ClassifyResponse response;
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      grpc::Status status = stub->Classify(&context, request, &response);
      if (status.ok()) {
        ++answered;
      } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
        break;
      } else {
        ++unanswered;
        ADD_FAILURE() << status.error_code() << ": " << status.error_message();
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(300));
  auto exit_code = (*server)->Stop(SIGTERM);
  stop = true;
  client.join();
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << (*server)->Output();
  EXPECT_GT(answered.load(), 0);
  EXPECT_EQ(unanswered.load(), 0);
  EXPECT_THAT((*server)->Output(), HasSubstr("draining"));
}

TEST(ServerProcessLifecycle, ServesTheInt8ModelWithInt8Flag) {
  auto server = ServerProcess::Start({absl::StrCat("--model_dir=", kTestModelDir), "--int8"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Classifier::NewStub(
      grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials()));
  v1::ClassifyRequest request;
  request.mutable_image()->set_encoded(Png(28, 28, 2));
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->Classify(&context, request, &response).ok());
  EXPECT_EQ(response.model().variant(), "int8");
  EXPECT_EQ(response.predictions_size(), 5);
}

TEST(ServerProcessLifecycle, MissingModelDirectoryFailsWithAClearMessage) {
  auto server = ServerProcess::Start({"--model_dir=/nonexistent/model"});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("cannot open /nonexistent/model/metadata.json"));
}

}  // namespace
}  // namespace matid
