// The serving stack in-process (real gRPC over loopback, fake model held at
// will): deadlines, cancellation, load shedding, stream ordering and drain.
#include "server/matid_server.h"

#include <grpcpp/create_channel.h>

#include <future>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "matid/v1/matid.grpc.pb.h"
#include "tests/fake_backend.h"
#include "tests/tagged_image.h"

namespace matid {
namespace {

using ::testing::HasSubstr;

constexpr auto kBound = std::chrono::seconds(10);

class MatidServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options) {
    options.host = "127.0.0.1";
    options.port = 0;
    options.metrics.port = -1;
    auto backend = std::make_unique<FakeBackend>();
    backend_ = backend.get();
    auto server = MatidServer::Create(options, std::move(backend));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Classifier::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                                        grpc::InsecureChannelCredentials()));
  }

  // Classify on another thread; the future holds (status, top index).
  std::future<std::pair<grpc::Status, int>> ClassifyAsync(
      int tag, std::chrono::milliseconds timeout = std::chrono::milliseconds(20000),
      grpc::ClientContext** context_out = nullptr) {
    auto context = std::make_shared<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + timeout);
    if (context_out != nullptr) *context_out = context.get();
    return std::async(std::launch::async, [this, tag, context] {
      v1::ClassifyRequest request;
      *request.mutable_image() = TaggedImage(tag);
      v1::ClassifyResponse response;
      grpc::Status status = stub_->Classify(context.get(), request, &response);
      const int top = response.predictions_size() > 0 ? response.predictions(0).index() : -1;
      return std::make_pair(status, top);
    });
  }

  // Holds the model with one request (tag 1) running inside it.
  std::future<std::pair<grpc::Status, int>> OccupyTheModel() {
    backend_->Hold();
    auto running = ClassifyAsync(1);
    backend_->WaitForEntered(1);
    return running;
  }

  // Waits until the batcher holds at least `depth` queued images. Each
  // check is a Health call on the test's one connection: its answer comes
  // after the server has read everything sent on that connection before it.
  void WaitForQueueDepth(uint32_t depth) {
    for (int i = 0; i < 2000; ++i) {
      v1::HealthResponse health;
      grpc::ClientContext context;
      ASSERT_TRUE(stub_->Health(&context, v1::HealthRequest(), &health).ok());
      if (health.queue_depth() >= depth) return;
      absl::SleepFor(absl::Milliseconds(5));
    }
    FAIL() << "queue never reached " << depth;
  }

  // Waits until matid_requests_cancelled_total{rpc="Classify"} reaches `count`.
  void WaitForCancelledClassifyCalls(double count) {
    for (int i = 0; i < 2000; ++i) {
      for (const auto& family : server_->metrics_registry().Collect()) {
        if (family.name != "matid_requests_cancelled_total") continue;
        for (const auto& metric : family.metric) {
          if (metric.label.size() == 1 && metric.label[0].value == "Classify" &&
              metric.counter.value >= count) {
            return;
          }
        }
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    FAIL() << "the server never saw " << count << " cancelled Classify calls";
  }

  FakeBackend* backend_ = nullptr;  // owned by server_
  std::unique_ptr<MatidServer> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
};

TEST_F(MatidServerTest, EachCallerGetsItsOwnResult) {
  StartServer({});
  std::vector<std::future<std::pair<grpc::Status, int>>> calls;
  for (int tag = 0; tag < 10; ++tag) calls.push_back(ClassifyAsync(tag));
  for (int tag = 0; tag < 10; ++tag) {
    auto [status, top] = calls[tag].get();
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(top, tag);
  }
}

// Found by fuzz/request_fuzzer: a top_k above 2^31 wrapped to a negative int
// and silently meant "the default".
TEST_F(MatidServerTest, TopKBeyondTheLabelsGivesEveryLabel) {
  StartServer({});
  for (uint32_t top_k : {10u, 11u, 0x80000005u, 0xFFFFFFFFu}) {
    v1::ClassifyRequest request;
    *request.mutable_image() = TaggedImage(3);
    request.set_top_k(top_k);
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Classify(&context, request, &response).ok());
    EXPECT_EQ(response.predictions_size(), 10) << "top_k " << top_k;
  }
}

TEST_F(MatidServerTest, FullQueueAnswersResourceExhaustedAtOnce) {
  ServerOptions options;
  options.batcher.max_queue_size = 2;
  options.limits.max_batch_items = 2;
  StartServer(options);
  auto running = OccupyTheModel();
  auto queued1 = ClassifyAsync(2);
  auto queued2 = ClassifyAsync(3);
  WaitForQueueDepth(2);
  auto refused = ClassifyAsync(4);
  ASSERT_EQ(refused.wait_for(kBound), std::future_status::ready);  // not blocked by the held model
  auto [status, top] = refused.get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("queue is full"));
  backend_->Release();
  EXPECT_TRUE(running.get().first.ok());
  EXPECT_TRUE(queued1.get().first.ok());
  EXPECT_TRUE(queued2.get().first.ok());
}

TEST_F(MatidServerTest, RequestWhoseDeadlinePassesInTheQueueIsNeverRun) {
  StartServer({});
  auto running = OccupyTheModel();
  auto expiring = ClassifyAsync(2, std::chrono::milliseconds(100));
  // The server's copy of the deadline counts from the call's arrival, after
  // the client's (by any delay): once the image is queued, the call has
  // arrived, so the server's deadline is at most 100 ms from then.
  WaitForQueueDepth(1);
  const absl::Time server_deadline_at_latest = absl::Now() + absl::Milliseconds(100);
  EXPECT_EQ(expiring.get().first.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  absl::SleepFor(server_deadline_at_latest - absl::Now() + absl::Milliseconds(5));
  backend_->Release();
  EXPECT_TRUE(running.get().first.ok());
  server_->Shutdown();
  EXPECT_EQ(backend_->images_run(), 1);  // the expired image never reached the model
}

TEST_F(MatidServerTest, CancelledCallLeavesNoWorkBehind) {
  StartServer({});
  auto running = OccupyTheModel();
  grpc::ClientContext* context = nullptr;
  auto cancelled = ClassifyAsync(2, std::chrono::milliseconds(20000), &context);
  WaitForQueueDepth(1);
  context->TryCancel();
  EXPECT_EQ(cancelled.get().first.error_code(), grpc::StatusCode::CANCELLED);
  // The server learns of it from an RST_STREAM, handled on its own gRPC
  // thread: a Health answer after it does not prove it was handled (that
  // failed once in a full run); the cancelled counter does.
  WaitForCancelledClassifyCalls(1);
  backend_->Release();
  EXPECT_TRUE(running.get().first.ok());
  server_->Shutdown();
  EXPECT_EQ(backend_->images_run(), 1);
}

TEST_F(MatidServerTest, StreamWritesResultsInFrameOrderEvenWhenLaterFramesFinishFirst) {
  StartServer({});
  backend_->Hold();
  grpc::ClientContext context;
  auto stream = stub_->ClassifyStream(&context);
  // Frame 1 is held in the model; frame 2 is bad and fails at once; frame 3 waits.
  v1::Frame frame;
  frame.set_seq(1);
  *frame.mutable_image() = TaggedImage(1);
  ASSERT_TRUE(stream->Write(frame));
  backend_->WaitForEntered(1);
  frame.set_seq(2);
  frame.mutable_image()->set_encoded("junk");
  ASSERT_TRUE(stream->Write(frame));
  frame.set_seq(3);
  *frame.mutable_image() = TaggedImage(3);
  ASSERT_TRUE(stream->Write(frame));
  stream->WritesDone();
  // Frames are read in order: once frame 3 is queued, frame 2 has failed.
  WaitForQueueDepth(1);
  backend_->Release();
  std::vector<v1::FrameResult> results;
  v1::FrameResult result;
  while (stream->Read(&result)) results.push_back(result);
  ASSERT_TRUE(stream->Finish().ok());
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].seq(), 1u);
  EXPECT_EQ(results[0].predictions(0).index(), 1u);
  EXPECT_EQ(results[1].seq(), 2u);
  EXPECT_EQ(results[1].status().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(results[2].seq(), 3u);
  EXPECT_EQ(results[2].predictions(0).index(), 3u);
}

TEST_F(MatidServerTest, StreamPausesReadingBeyondFramesInFlight) {
  ServerOptions options;
  options.limits.max_stream_frames_in_flight = 2;
  StartServer(options);
  backend_->Hold();
  grpc::ClientContext context;
  auto stream = stub_->ClassifyStream(&context);
  for (int seq = 0; seq < 6; ++seq) {
    v1::Frame frame;
    frame.set_seq(seq);
    *frame.mutable_image() = TaggedImage(seq);
    ASSERT_TRUE(stream->Write(frame));  // small frames: buffered by flow control
  }
  backend_->WaitForEntered(1);
  // Frame 1 is taken beside frame 0 (queued, or in the same batch).
  auto in_flight = [this] {
    v1::HealthResponse health;
    grpc::ClientContext health_context;
    EXPECT_TRUE(stub_->Health(&health_context, v1::HealthRequest(), &health).ok());
    return health.in_flight();
  };
  for (int i = 0; i < 2000 && in_flight() < 2; ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(in_flight(), 2u);
  // An absence check: a stream that took a third frame would have done so
  // by now on any machine; a slower one only makes the check weaker.
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_LE(in_flight(), 2u) << "the stream took more frames than allowed";
  backend_->Release();
  stream->WritesDone();
  v1::FrameResult result;
  int count = 0;
  while (stream->Read(&result)) EXPECT_EQ(result.seq(), static_cast<uint64_t>(count++));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(count, 6);
}

TEST_F(MatidServerTest, ShutdownAnswersEveryAcceptedRequestThenRefusesNewOnes) {
  StartServer({});
  backend_->Hold();
  std::vector<std::future<std::pair<grpc::Status, int>>> calls;
  calls.push_back(ClassifyAsync(0));
  backend_->WaitForEntered(1);
  for (int tag = 1; tag < 6; ++tag) calls.push_back(ClassifyAsync(tag));
  WaitForQueueDepth(5);
  auto shutdown = std::async(std::launch::async, [&] { server_->Shutdown(); });
  EXPECT_EQ(shutdown.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  backend_->Release();
  ASSERT_EQ(shutdown.wait_for(kBound), std::future_status::ready);
  for (int tag = 0; tag < 6; ++tag) {
    auto [status, top] = calls[tag].get();
    EXPECT_TRUE(status.ok()) << tag << ": " << status.error_message();
    EXPECT_EQ(top, tag);
  }
  auto late = ClassifyAsync(9, std::chrono::milliseconds(2000));
  EXPECT_EQ(late.get().first.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(MatidServerTest, BatchClassifyUnderAFullQueueIsRefusedWhole) {
  ServerOptions options;
  options.batcher.max_queue_size = 3;
  options.limits.max_batch_items = 3;
  StartServer(options);
  auto running = OccupyTheModel();
  auto queued = ClassifyAsync(2);
  WaitForQueueDepth(1);
  v1::BatchClassifyRequest request;
  for (int tag = 0; tag < 3; ++tag) *request.add_items()->mutable_image() = TaggedImage(tag);
  v1::BatchClassifyResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->BatchClassify(&context, request, &response).ok());
  ASSERT_EQ(response.results_size(), 3);
  for (const auto& result : response.results()) {
    EXPECT_EQ(result.status().code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  backend_->Release();
  EXPECT_TRUE(running.get().first.ok());
  EXPECT_TRUE(queued.get().first.ok());
}

TEST(MatidServerOptions, InvalidOptionsAreRefusedWithTheReason) {
  ServerOptions options;
  options.limits.max_batch_items = 500;  // more than the queue holds
  auto server = MatidServer::Create(options, std::make_unique<FakeBackend>());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("max_batch_items"));
}

}  // namespace
}  // namespace matid
