// ClassifyFiles against an in-process fake Classifier on loopback: results
// in file order, unreadable files failed locally, batches of the asked size
// with per-item failures, busy answers retried within max_attempts, and no
// more calls in flight than `concurrency`.
#include "client/classify/file_classifier.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

using ::testing::ElementsAre;

// Answers an image whose bytes are "label:NAME" with NAME; "bad" with
// INVALID_ARGUMENT; the first `busy_calls` calls of either RPC with
// RESOURCE_EXHAUSTED.
class FakeClassifier final : public v1::Classifier::Service {
 public:
  int busy_calls = 0;
  absl::Duration delay = absl::ZeroDuration();

  grpc::Status Classify(grpc::ServerContext*, const v1::ClassifyRequest* request,
                        v1::ClassifyResponse* response) override {
    CallScope scope(this);
    if (TakeBusy()) return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "busy");
    return Answer(*request, response);
  }

  grpc::Status BatchClassify(grpc::ServerContext*, const v1::BatchClassifyRequest* request,
                             v1::BatchClassifyResponse* response) override {
    CallScope scope(this);
    if (TakeBusy()) return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "busy");
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch_sizes_.push_back(request->items_size());
    }
    for (const v1::ClassifyRequest& item : request->items()) {
      v1::BatchItemResult* result = response->add_results();
      grpc::Status status = Answer(item, result->mutable_response());
      result->mutable_status()->set_code(status.error_code());
      result->mutable_status()->set_message(status.error_message());
      if (!status.ok()) result->clear_response();
    }
    return grpc::Status::OK;
  }

  int calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  int max_concurrent() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_concurrent_;
  }
  std::vector<int> batch_sizes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return batch_sizes_;
  }

 private:
  // Counts a call while it runs.
  struct CallScope {
    explicit CallScope(FakeClassifier* fake) : fake(fake) {
      {
        std::lock_guard<std::mutex> lock(fake->mu_);
        ++fake->calls_;
        fake->max_concurrent_ = std::max(fake->max_concurrent_, ++fake->running_);
      }
      absl::SleepFor(fake->delay);
    }
    ~CallScope() {
      std::lock_guard<std::mutex> lock(fake->mu_);
      --fake->running_;
    }
    FakeClassifier* fake;
  };

  bool TakeBusy() {
    std::lock_guard<std::mutex> lock(mu_);
    if (busy_calls == 0) return false;
    --busy_calls;
    return true;
  }

  static grpc::Status Answer(const v1::ClassifyRequest& request, v1::ClassifyResponse* response) {
    const std::string& bytes = request.image().encoded();
    if (bytes.rfind("label:", 0) != 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "fake: not an image");
    }
    response->set_request_id(request.request_id());
    v1::Prediction* top = response->add_predictions();
    top->set_label(bytes.substr(6));
    top->set_score(0.75f);
    return grpc::Status::OK;
  }

  mutable std::mutex mu_;
  int calls_ = 0;
  int running_ = 0;
  int max_concurrent_ = 0;
  std::vector<int> batch_sizes_;
};

class FileClassifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Classifier::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                        grpc::InsecureChannelCredentials()));
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now());
    std::filesystem::remove_all(dir_);
  }

  // A file holding `content`; returns its path.
  std::string File(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  std::vector<std::string> LabelledFiles(int count) {
    std::vector<std::string> files;
    for (int i = 0; i < count; ++i) {
      files.push_back(File("f" + std::to_string(i), "label:part-" + std::to_string(i)));
    }
    return files;
  }

  static std::vector<std::string> TopLabels(const std::vector<ClassifyResult>& results) {
    std::vector<std::string> labels;
    for (const ClassifyResult& result : results) {
      labels.push_back(result.ok() ? result.top.at(0).label : result.status_code);
    }
    return labels;
  }

  FakeClassifier fake_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  std::filesystem::path dir_;
};

TEST_F(FileClassifierTest, ResultsFollowFileOrderAndUnreadableFilesFailLocally) {
  std::vector<std::string> files = LabelledFiles(3);
  files.insert(files.begin() + 1, (dir_ / "missing").string());
  files.push_back(File("junk", "not an image"));
  const auto results = ClassifyFiles(stub_.get(), files, {.concurrency = 3}, nullptr);
  EXPECT_THAT(TopLabels(results),
              ElementsAre("part-0", "NOT_FOUND", "part-1", "part-2", "INVALID_ARGUMENT"));
  EXPECT_EQ(results[1].path, files[1]);
  EXPECT_EQ(results[4].error, "fake: not an image");
  EXPECT_EQ(fake_.calls(), 4) << "the missing file is not sent";
}

TEST_F(FileClassifierTest, BatchRpcSendsBatchesOfTheAskedSizeAndKeepsItemFailuresApart) {
  std::vector<std::string> files = LabelledFiles(6);
  files[4] = File("bad", "garbage");
  const auto results = ClassifyFiles(
      stub_.get(), files, {.use_batch_rpc = true, .batch_size = 4, .concurrency = 1}, nullptr);
  EXPECT_THAT(TopLabels(results),
              ElementsAre("part-0", "part-1", "part-2", "part-3", "INVALID_ARGUMENT", "part-5"));
  EXPECT_THAT(fake_.batch_sizes(), ElementsAre(4, 2));
}

TEST_F(FileClassifierTest, BusyServerIsRetriedUntilAttemptsRunOut) {
  fake_.busy_calls = 2;
  auto results = ClassifyFiles(stub_.get(), LabelledFiles(1), {.max_attempts = 3}, nullptr);
  EXPECT_THAT(TopLabels(results), ElementsAre("part-0"));
  EXPECT_EQ(fake_.calls(), 3);

  fake_.busy_calls = 5;
  results = ClassifyFiles(stub_.get(), LabelledFiles(1), {.max_attempts = 2}, nullptr);
  EXPECT_THAT(TopLabels(results), ElementsAre("RESOURCE_EXHAUSTED"));
}

TEST_F(FileClassifierTest, CallsInFlightStayWithinConcurrencyAndProgressReachesTheEnd) {
  fake_.delay = absl::Milliseconds(5);
  std::vector<size_t> progress;
  const auto results = ClassifyFiles(stub_.get(), LabelledFiles(24), {.concurrency = 3},
                                     [&](size_t finished) { progress.push_back(finished); });
  EXPECT_EQ(results.size(), 24u);
  EXPECT_LE(fake_.max_concurrent(), 3);
  EXPECT_GE(fake_.max_concurrent(), 2) << "calls were not overlapped";
  ASSERT_FALSE(progress.empty());
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
  EXPECT_EQ(progress.back(), 24u);
}

}  // namespace
}  // namespace matid
