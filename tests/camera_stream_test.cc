// The camera's streaming engine against a fake source and a fake server (an
// in-process Classifier service on loopback whose answers the test scripts):
// every frame answered and published once, in order; no more frames in
// flight than allowed; a broken stream resends what was unanswered; a busy
// answer is retried and a refusal counted; the server sees what the camera
// was told to send (ROI, JPEG or raw pixels); Stop() ends Run() promptly.
#include <grpcpp/create_channel.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <thread>
#include <vector>

#include "client/camera/camera.h"
#include "common/file_contents.h"
#include "common/folder_budget.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "matid/v1/matid.grpc.pb.h"

namespace matid {
namespace {

using ::testing::ElementsAreArray;

// `count` frames of width x height (endless when count < 0), then the end;
// as pixels, or as JPEGs decoded at the scale the camera asks for (as an
// MJPEG source does). Remembers the last scale asked for.
class SyntheticSource final : public FrameSource {
 public:
  SyntheticSource(int count, int width, int height, bool jpeg = false)
      : count_(count), width_(width), height_(height), jpeg_(jpeg) {}
  absl::StatusOr<Frame> Next(const DecodeScale& scale_for) override {
    if (count_ >= 0 && produced_ >= count_) return absl::OutOfRangeError("end of frames");
    ++produced_;
    cv::Mat pixels(height_, width_, CV_8UC3, cv::Scalar(produced_ % 256, 80, 160));
    if (!jpeg_) return Frame{pixels, 1, ""};
    std::vector<uint8_t> bytes;
    cv::imencode(".jpg", pixels, bytes);
    auto frame = DecodeJpegFrame(std::string(bytes.begin(), bytes.end()), scale_for);
    if (frame.ok()) last_scale_ = frame->scale;
    return frame;
  }
  std::string description() const override { return "synthetic"; }
  int last_scale() const { return last_scale_; }

 private:
  const int count_;
  const int width_;
  const int height_;
  const bool jpeg_;
  int produced_ = 0;
  int last_scale_ = 0;
};

// What the fake server saw of one frame.
struct SeenFrame {
  uint64_t seq = 0;
  bool encoded = false;
  int width = 0;
  int height = 0;
};

// A Classifier whose ClassifyStream reads frames eagerly on one thread and
// answers them in order on another, as scripted by the test.
class FakeClassifier final : public v1::Classifier::Service {
 public:
  // Ends the stream with UNAVAILABLE, unanswered, when this many frames have
  // been received in all (once); 0: never.
  int break_at_frame = 0;
  std::set<uint64_t> busy_once;  // answered RESOURCE_EXHAUSTED the first time
  std::set<uint64_t> refused;    // answered INVALID_ARGUMENT
  // Every frame answered RESOURCE_EXHAUSTED until this much time has passed
  // since the first frame arrived.
  absl::Duration busy_for = absl::ZeroDuration();
  absl::Duration answer_delay = absl::ZeroDuration();
  // What Health says of the model input; width 0: Health fails.
  int input_width = 0;
  int input_height = 0;
  std::string input_resize = "stretch";

  grpc::Status Health(grpc::ServerContext*, const v1::HealthRequest*,
                      v1::HealthResponse* response) override {
    if (input_width == 0) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "fake: no health");
    response->set_state(v1::HealthResponse::SERVING);
    v1::InputSpec* input = response->mutable_model()->mutable_input();
    input->set_width(input_width);
    input->set_height(input_height);
    input->set_resize(input_resize);
    return grpc::Status::OK;
  }

  grpc::Status ClassifyStream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::FrameResult, v1::Frame>* stream) override {
    std::mutex inbox_mu;
    std::condition_variable inbox_changed;
    std::deque<v1::Frame> inbox;
    bool reading_done = false;
    std::thread reader([&] {
      v1::Frame frame;
      while (stream->Read(&frame)) {
        Received(frame);
        std::lock_guard<std::mutex> lock(inbox_mu);
        inbox.push_back(frame);
        inbox_changed.notify_all();
      }
      std::lock_guard<std::mutex> lock(inbox_mu);
      reading_done = true;
      inbox_changed.notify_all();
    });
    grpc::Status status = grpc::Status::OK;
    while (true) {
      v1::Frame frame;
      {
        std::unique_lock<std::mutex> lock(inbox_mu);
        inbox_changed.wait(lock, [&] { return !inbox.empty() || reading_done; });
        if (inbox.empty()) break;
        frame = std::move(inbox.front());
        inbox.pop_front();
      }
      if (BreakHere(frame)) {
        status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake server: stream broken");
        break;
      }
      absl::SleepFor(answer_delay);
      v1::FrameResult result = Answer(frame);
      if (!stream->Write(result)) break;
    }
    context->TryCancel();  // ends the reader's Read if the client is still sending
    reader.join();
    return status;
  }

  std::vector<SeenFrame> seen() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  int max_outstanding() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_outstanding_;
  }

  int answered_busy_all() const {
    std::lock_guard<std::mutex> lock(mu_);
    return answered_busy_all_;
  }

 private:
  void Received(const v1::Frame& frame) {
    SeenFrame seen{frame.seq(), frame.image().has_encoded()};
    if (seen.encoded) {
      const std::string& bytes = frame.image().encoded();
      const cv::Mat decoded = cv::imdecode(
          cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())),
          cv::IMREAD_UNCHANGED);
      seen.width = decoded.cols;
      seen.height = decoded.rows;
    } else {
      seen.width = static_cast<int>(frame.image().raw().width());
      seen.height = static_cast<int>(frame.image().raw().height());
    }
    std::lock_guard<std::mutex> lock(mu_);
    seen_.push_back(seen);
    ++received_;
    // Received minus answered here never exceeds the camera's frames in
    // flight: it sent them all, and has not yet read the answers.
    max_outstanding_ = std::max(max_outstanding_, received_ - answered_);
  }

  bool BreakHere(const v1::Frame& frame) {
    std::lock_guard<std::mutex> lock(mu_);
    if (break_at_frame == 0 || broken_ || received_ < break_at_frame) return false;
    broken_ = true;
    ++answered_;  // this one will not be answered on this stream
    (void)frame;
    return true;
  }

  v1::FrameResult Answer(const v1::Frame& frame) {
    v1::FrameResult result;
    result.set_seq(frame.seq());
    std::lock_guard<std::mutex> lock(mu_);
    ++answered_;
    if (first_answer_ == absl::InfinitePast()) first_answer_ = absl::Now();
    if (absl::Now() - first_answer_ < busy_for) {
      ++answered_busy_all_;
      result.mutable_status()->set_code(grpc::StatusCode::RESOURCE_EXHAUSTED);
      result.mutable_status()->set_message("fake server: queue full");
      return result;
    }
    if (busy_once.count(frame.seq()) > 0 && answered_busy_.insert(frame.seq()).second) {
      result.mutable_status()->set_code(grpc::StatusCode::RESOURCE_EXHAUSTED);
      result.mutable_status()->set_message("fake server: queue full");
      return result;
    }
    if (refused.count(frame.seq()) > 0) {
      result.mutable_status()->set_code(grpc::StatusCode::INVALID_ARGUMENT);
      result.mutable_status()->set_message("fake server: bad frame");
      return result;
    }
    v1::Prediction* top = result.add_predictions();
    top->set_label("part-" + std::to_string(frame.seq() % 3));
    top->set_score(0.9f);
    result.mutable_model()->set_name("fake");
    result.mutable_model()->set_version("7");
    return result;
  }

  mutable std::mutex mu_;
  std::vector<SeenFrame> seen_;
  int received_ = 0;
  int answered_ = 0;
  int max_outstanding_ = 0;
  bool broken_ = false;
  std::set<uint64_t> answered_busy_;
  absl::Time first_answer_ = absl::InfinitePast();
  int answered_busy_all_ = 0;
};

// The fake server on a free loopback port, and a camera pointed at it that
// collects what it publishes.
class CameraStreamTest : public ::testing::Test {
 protected:
  void StartServer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  std::unique_ptr<Camera> MakeCamera(CameraOptions options, std::unique_ptr<FrameSource> source) {
    StartServer();
    options.boot_id = "boot";
    options.reconnect_min = absl::Milliseconds(10);
    options.reconnect_max = absl::Milliseconds(100);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                       grpc::InsecureChannelCredentials());
    auto camera = Camera::Create(
        options, std::move(source), channel,
        [this](const ResultMessage& message) {
          std::lock_guard<std::mutex> lock(published_mu_);
          published_.push_back(message);
        },
        &registry_);
    EXPECT_TRUE(camera.ok()) << camera.status();
    return camera.ok() ? *std::move(camera) : nullptr;
  }

  std::vector<uint64_t> PublishedSeqs() {
    std::lock_guard<std::mutex> lock(published_mu_);
    std::vector<uint64_t> seqs;
    for (const ResultMessage& message : published_) seqs.push_back(message.frame_seq);
    return seqs;
  }

  static std::vector<uint64_t> Range(uint64_t count, std::set<uint64_t> except = {}) {
    std::vector<uint64_t> seqs;
    for (uint64_t seq = 0; seq < count; ++seq) {
      if (except.count(seq) == 0) seqs.push_back(seq);
    }
    return seqs;
  }

  double Counter(const std::string& name) {
    for (const auto& family : registry_.Collect()) {
      if (family.name == name) return family.metric.at(0).counter.value;
    }
    return -1;
  }
  double Reconnects() { return Counter("matid_camera_stream_reconnects_total"); }

  FakeClassifier fake_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  prometheus::Registry registry_;
  std::mutex published_mu_;
  std::vector<ResultMessage> published_;
};

TEST_F(CameraStreamTest, EveryFrameIsPublishedOnceInOrderWithinTheInFlightLimit) {
  fake_.answer_delay = absl::Milliseconds(2);
  CameraOptions options;
  options.max_in_flight = 3;
  options.max_pending = 64;  // nothing dropped: the source is faster than the server
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(30, 64, 48));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  EXPECT_THAT(PublishedSeqs(), ElementsAreArray(Range(30)));
  EXPECT_LE(fake_.max_outstanding(), 3);
  EXPECT_GE(fake_.max_outstanding(), 2) << "frames were not pipelined";
  const CameraStats stats = camera->stats();
  EXPECT_EQ(stats.captured, 30);
  EXPECT_EQ(stats.classified, 30);
  EXPECT_EQ(stats.dropped, 0);
  std::lock_guard<std::mutex> lock(published_mu_);
  EXPECT_EQ(published_[4].message_id, "camera-1-boot-4");
  EXPECT_EQ(published_[4].top_label, "part-1");
  EXPECT_EQ(published_[4].model_version, "7");
}

TEST_F(CameraStreamTest, BrokenStreamResendsTheUnansweredFramesAndLosesNone) {
  fake_.break_at_frame = 7;
  fake_.answer_delay = absl::Milliseconds(1);
  CameraOptions options;
  options.max_pending = 64;
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(20, 32, 32));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  EXPECT_THAT(PublishedSeqs(), ElementsAreArray(Range(20)));
  EXPECT_GE(Reconnects(), 1);
  EXPECT_GT(fake_.seen().size(), 20u) << "the unanswered frames were sent again";
}

TEST_F(CameraStreamTest, BusyFrameIsRetriedAndRefusedFrameIsCountedNotPublished) {
  fake_.busy_once = {3};
  fake_.refused = {5};
  CameraOptions options;
  options.max_pending = 64;
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(10, 32, 32));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  std::vector<uint64_t> seqs = PublishedSeqs();
  std::sort(seqs.begin(), seqs.end());  // the retried frame comes back later
  EXPECT_THAT(seqs, ElementsAreArray(Range(10, {5})));
  EXPECT_EQ(camera->stats().failed, 1);
  EXPECT_EQ(camera->stats().classified, 9);
}

TEST_F(CameraStreamTest, BusyServerIsRetriedAfterABackoffNotInAHotLoop) {
  // Busy for 400 ms: a camera resending at once answers a loopback round
  // trip (well under 1 ms) with the next try, thousands of times. Backing
  // off from 10 ms to at most 100 ms, it tries a few dozen times at most.
  fake_.busy_for = absl::Milliseconds(400);
  CameraOptions options;
  options.max_pending = 64;
  options.max_in_flight = 2;
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(5, 32, 32));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  std::vector<uint64_t> seqs = PublishedSeqs();
  std::sort(seqs.begin(), seqs.end());  // frames answered busy go back first in line
  EXPECT_THAT(seqs, ElementsAreArray(Range(5))) << "every frame classified in the end";
  EXPECT_GT(fake_.answered_busy_all(), 0);
  EXPECT_LT(fake_.answered_busy_all(), 200) << "busy answers were retried without a pause";
  EXPECT_EQ(Counter("matid_camera_busy_retries_total"), fake_.answered_busy_all());
}

TEST_F(CameraStreamTest, ServerSeesTheRegionOfInterestAsJpeg) {
  CameraOptions options;
  options.roi = cv::Rect(10, 20, 100, 60);
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(3, 320, 240));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  ASSERT_EQ(fake_.seen().size(), 3u);
  for (const SeenFrame& seen : fake_.seen()) {
    EXPECT_TRUE(seen.encoded);
    EXPECT_EQ(seen.width, 100);
    EXPECT_EQ(seen.height, 60);
  }
}

TEST_F(CameraStreamTest, FramesAreShrunkToTheModelInputAfterTheRegionOfInterest) {
  fake_.input_width = 28;
  fake_.input_height = 28;
  CameraOptions options;
  options.roi = cv::Rect(100, 50, 400, 300);
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(4, 1920, 1080));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  ASSERT_EQ(fake_.seen().size(), 4u);
  for (const SeenFrame& seen : fake_.seen()) {
    EXPECT_EQ(seen.width, 28);
    EXPECT_EQ(seen.height, 28);
  }
}

TEST_F(CameraStreamTest, JpegFramesAreDecodedAtReducedScaleAndStillShrunkExactly) {
  fake_.input_width = 28;
  fake_.input_height = 28;
  CameraOptions options;
  options.roi = cv::Rect(0, 0, 960, 540);  // 960x540 at 1/8 is 120x67: still >= 28x28
  auto source = std::make_unique<SyntheticSource>(3, 1920, 1080, /*jpeg=*/true);
  SyntheticSource* synthetic = source.get();
  auto camera = MakeCamera(options, std::move(source));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  EXPECT_EQ(synthetic->last_scale(), 8);
  ASSERT_EQ(fake_.seen().size(), 3u);
  EXPECT_EQ(fake_.seen()[2].width, 28);
  EXPECT_EQ(fake_.seen()[2].height, 28);
}

TEST_F(CameraStreamTest, LetterboxModelGetsTheScaledFrameWithoutBorderAsRawPixels) {
  fake_.input_width = 224;
  fake_.input_height = 224;
  fake_.input_resize = "letterbox";
  CameraOptions options;
  options.jpeg_quality = 0;
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(2, 1920, 1080));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  ASSERT_EQ(fake_.seen().size(), 2u);
  EXPECT_FALSE(fake_.seen()[0].encoded);
  EXPECT_EQ(fake_.seen()[0].width, 224);
  EXPECT_EQ(fake_.seen()[0].height, 126);
}

TEST_F(CameraStreamTest, WithoutShrinkingOrWithoutHealthTheWholeFrameIsSent) {
  fake_.input_width = 28;
  fake_.input_height = 28;
  CameraOptions options;
  options.shrink_to_model = false;
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(2, 640, 360));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  ASSERT_EQ(fake_.seen().size(), 2u);
  EXPECT_EQ(fake_.seen()[1].width, 640);
  EXPECT_EQ(fake_.seen()[1].height, 360);
}

TEST_F(CameraStreamTest, InspectionImagesKeepTheWholeRegionOfInterest) {
  fake_.input_width = 28;
  fake_.input_height = 28;
  const std::filesystem::path inspect = std::filesystem::path(::testing::TempDir()) / "inspect";
  std::filesystem::remove_all(inspect);
  CameraOptions options;
  options.roi = cv::Rect(0, 0, 320, 200);
  options.inspection_threshold = 0.95;  // the fake's 0.9 needs inspection
  options.inspection_dir = inspect.string();
  // JPEG frames, decoded at 1/4 for the model: the saved image is still whole.
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(2, 640, 360, true));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  EXPECT_EQ(fake_.seen()[0].width, 28);
  int saved = 0;
  for (const auto& entry : std::filesystem::directory_iterator(inspect)) {
    const cv::Mat image = cv::imread(entry.path().string());
    EXPECT_EQ(image.cols, 320) << entry.path();
    EXPECT_EQ(image.rows, 200) << entry.path();
    ++saved;
  }
  EXPECT_EQ(saved, 2);
  std::filesystem::remove_all(inspect);
}

TEST_F(CameraStreamTest, InspectionFolderKeepsAtMostItsLimitCountingWhatWasAlreadyThere) {
  const std::filesystem::path inspect =
      std::filesystem::path(::testing::TempDir()) / "inspect-bounded";
  std::filesystem::remove_all(inspect);
  std::filesystem::create_directories(inspect);
  ASSERT_TRUE(WriteFileContents((inspect / "from-yesterday.jpg").string(), "x").ok());
  ASSERT_TRUE(WriteFileContents((inspect / "notes.txt").string(), "not a frame").ok());
  CameraOptions options;
  options.inspection_threshold = 0.95;  // the fake's 0.9: every frame needs inspection
  options.inspection_dir = inspect.string();
  options.inspection_max_files = 4;
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(7, 64, 48));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  EXPECT_EQ(PublishedSeqs().size(), 7u) << "a full folder must not cost a result";
  EXPECT_EQ(MeasureFolder(inspect.string(), ".jpg").files, 4);
  EXPECT_EQ(Counter("matid_camera_inspection_folder_full_total"), 4);
  EXPECT_EQ(Counter("matid_camera_inspection_write_failures_total"), 0);
  std::filesystem::remove_all(inspect);
}

TEST_F(CameraStreamTest, InspectionFolderKeepsAtMostItsMegabytesCountingWhatWasAlreadyThere) {
  const std::filesystem::path inspect =
      std::filesystem::path(::testing::TempDir()) / "inspect-bytes";
  std::filesystem::remove_all(inspect);
  std::filesystem::create_directories(inspect);
  // Any file counts against the bytes: 1 MiB less 100 bytes leaves no room
  // for a frame.
  ASSERT_TRUE(
      WriteFileContents((inspect / "video.mkv").string(), std::string((1 << 20) - 100, 'x')).ok());
  CameraOptions options;
  options.inspection_threshold = 0.95;  // the fake's 0.9: every frame needs inspection
  options.inspection_dir = inspect.string();
  options.inspection_max_mb = 1;
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(5, 64, 48));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  EXPECT_EQ(PublishedSeqs().size(), 5u) << "a full folder must not cost a result";
  EXPECT_EQ(MeasureFolder(inspect.string(), ".jpg").files, 0);
  EXPECT_EQ(Counter("matid_camera_inspection_folder_full_total"), 5);
  std::filesystem::remove_all(inspect);
}

TEST_F(CameraStreamTest, JpegQualityZeroSendsRawPixelsOfTheFrame) {
  CameraOptions options;
  options.jpeg_quality = 0;
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(2, 80, 40));
  ASSERT_NE(camera, nullptr);
  ASSERT_TRUE(camera->Run().ok());
  ASSERT_EQ(fake_.seen().size(), 2u);
  EXPECT_FALSE(fake_.seen()[0].encoded);
  EXPECT_EQ(fake_.seen()[0].width, 80);
  EXPECT_EQ(fake_.seen()[0].height, 40);
}

TEST_F(CameraStreamTest, StopEndsRunPromptlyWithAnEndlessSource) {
  CameraOptions options;
  options.pace_fps = 200;
  auto camera = MakeCamera(options, std::make_unique<SyntheticSource>(-1, 32, 32));
  ASSERT_NE(camera, nullptr);
  auto run = std::async(std::launch::async, [&] { return camera->Run(); });
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (PublishedSeqs().size() < 5 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_GE(PublishedSeqs().size(), 5u);
  camera->Stop();
  ASSERT_EQ(run.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(run.get().ok());
}

}  // namespace
}  // namespace matid
