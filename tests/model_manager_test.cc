// The model repository and its manager, in-process with real gRPC over
// loopback and fake models: which versions serve (latest, pinned), swaps
// that let admitted requests finish on their version, FAILED versions that
// leave the old one serving, per-model routing and health, and the files'
// layout rules.
#include "server/repository/model_manager.h"

#include <grpcpp/create_channel.h>

#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/event_message.h"
#include "common/file_contents.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "matid/v1/admin.grpc.pb.h"
#include "matid/v1/matid.grpc.pb.h"
#include "opencv2/imgcodecs.hpp"
#include "server/api/admin_access.h"
#include "server/matid_server.h"
#include "tests/fake_backend.h"
#include "tests/fake_clock.h"
#include "tests/tagged_image.h"

namespace matid {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A repository on disk whose version folders hold one file, fake.txt: "ok"
// loads a FakeBackend ("ok-disagree4": one that gives tags divisible by 4
// the next class; "ok-labels3": one with 3 labels; "ok-unsure": one whose
// top-1 score is 0.3), anything else fails to
// load with that text.
class FakeRepository {
 public:
  FakeRepository() {
    root_ = fs::temp_directory_path() / absl::StrCat("matid-repo-", getpid(), "-", counter_++);
    fs::create_directories(root_);
  }
  ~FakeRepository() { fs::remove_all(root_); }

  std::string root() const { return root_.string(); }

  void Put(const std::string& model, int version, const std::string& content = "ok") {
    const fs::path dir = root_ / model / std::to_string(version);
    fs::create_directories(dir);
    std::ofstream(dir / "fake.txt") << content;
  }
  void Policy(const std::string& model, const std::string& json) {
    fs::create_directories(root_ / model);
    std::ofstream(root_ / model / kVersionPolicyFile) << json;
  }
  void Remove(const std::string& relative) { fs::remove_all(root_ / relative); }

  // Runs on the manager's thread.
  absl::StatusOr<std::unique_ptr<ModelBackend>> Load(const std::string& dir) {
    auto content = ReadFileContents(dir + "/fake.txt");
    std::lock_guard<std::mutex> lock(mu_);
    ++loads_[dir];
    if (!content.ok()) return content.status();
    if (content->substr(0, 2) != "ok") return absl::InvalidArgumentError(*content);
    auto backend = std::make_unique<FakeBackend>(*content == "ok-labels3" ? FakeModelInfo(4, 4, 3)
                                                                          : FakeModelInfo());
    if (*content == "ok-disagree4") backend->set_disagree_every(4);
    if (*content == "ok-unsure") backend->set_top_score(0.3f);
    backends_[dir] = backend.get();
    return backend;
  }
  BackendLoader Loader() {
    return [this](const std::string& dir) { return Load(dir); };
  }
  int loads(const std::string& model, int version) {
    std::lock_guard<std::mutex> lock(mu_);
    return loads_[VersionDir(root(), model, version)];
  }
  FakeBackend* backend(const std::string& model, int version) {
    std::lock_guard<std::mutex> lock(mu_);
    return backends_[VersionDir(root(), model, version)];
  }

 private:
  static inline int counter_ = 0;
  fs::path root_;
  std::mutex mu_;
  std::map<std::string, int> loads_;              // guarded by mu_
  std::map<std::string, FakeBackend*> backends_;  // guarded by mu_; owned by the server
};

class ModelRepositoryServer : public ::testing::Test {
 protected:
  absl::Status Start(ServerOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    options.clock = &clock_;
    options.metrics.port = -1;
    options.lame_duck = absl::ZeroDuration();
    auto server = MatidServer::CreateWithRepository(options, repo_.root(), repo_.Loader());
    if (!server.ok()) return server.status();
    server_ = *std::move(server);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
    stub_ = v1::Classifier::NewStub(channel);
    admin_ = v1::ModelAdmin::NewStub(channel);
    health_ = grpc::health::v1::Health::NewStub(channel);
    return absl::OkStatus();
  }

  ModelManager& Manager() { return const_cast<ModelManager&>(server_->models()); }
  // Rescans and waits for it (what SIGHUP and polling trigger).
  void Reload() { Manager().ReloadAndWait(); }

  grpc::Status Classify(const std::string& model, int64_t version, v1::ClassifyResponse* response,
                        int tag = 3) {
    v1::ClassifyRequest request;
    *request.mutable_image() = TaggedImage(tag);
    request.set_model(model);
    request.set_model_version(version);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return stub_->Classify(&context, request, response);
  }
  std::string VersionServing(const std::string& model = "") {
    v1::ClassifyResponse response;
    grpc::Status status = Classify(model, 0, &response);
    return status.ok() ? response.model().version() : status.error_message();
  }

  // "model/version STATE" for every version Health reports.
  std::vector<std::string> States() {
    v1::HealthResponse health;
    grpc::ClientContext context;
    EXPECT_TRUE(stub_->Health(&context, v1::HealthRequest(), &health).ok());
    std::vector<std::string> states;
    for (const auto& model : health.models()) {
      states.push_back(absl::StrCat(model.name(), "/", model.version(), " ",
                                    v1::ModelVersionStatus::State_Name(model.state()),
                                    model.is_default() ? " default" : ""));
    }
    return states;
  }
  // Waits, woken by each state change, until the manager's states are
  // `wanted` (as States() writes them); false after 10 s.
  bool WaitForStates(const std::vector<std::string>& wanted) {
    return Manager().WaitUntil(
        [&](const std::vector<ModelVersionStatus>& statuses) {
          std::vector<std::string> states;
          for (const ModelVersionStatus& status : statuses) {
            states.push_back(absl::StrCat(status.model, "/", status.version, " ",
                                          ModelVersionStateName(status.state),
                                          status.is_default ? " default" : ""));
          }
          return states == wanted;
        },
        absl::Seconds(10));
  }
  // Waits until `version` serves the model's requests; false after `timeout`.
  bool WaitForDefault(const std::string& model, const std::string& version,
                      absl::Duration timeout = absl::Seconds(10)) {
    return Manager().WaitUntil(
        [&](const std::vector<ModelVersionStatus>& statuses) {
          for (const ModelVersionStatus& status : statuses) {
            if (status.model == model && status.is_default) return status.version == version;
          }
          return false;
        },
        timeout);
  }
  grpc::health::v1::HealthCheckResponse::ServingStatus ModelHealth(const std::string& model) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(model);
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext context;
    grpc::Status status = health_->Check(&context, request, &response);
    return status.ok() ? response.status() : grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN;
  }

  FakeClock clock_;  // the manager's: stands still unless a test moves it
  FakeRepository repo_;
  std::unique_ptr<MatidServer> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::unique_ptr<v1::ModelAdmin::Stub> admin_;
};

TEST_F(ModelRepositoryServer, ServesTheHighestVersionThatLoadsAndSaysWhyOthersFailed) {
  repo_.Put("parts", 1);
  repo_.Put("parts", 2);
  repo_.Put("parts", 3, "weights are corrupt");
  ASSERT_TRUE(Start().ok());
  EXPECT_EQ(VersionServing(), "2");
  EXPECT_EQ(repo_.loads("parts", 1), 0);  // latest: older versions are not loaded
  v1::HealthResponse health;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->Health(&context, v1::HealthRequest(), &health).ok());
  EXPECT_EQ(health.model().name(), "parts");
  EXPECT_EQ(health.model().version(), "2");
  ASSERT_EQ(health.models_size(), 2);
  EXPECT_EQ(health.models(0).state(), v1::ModelVersionStatus::AVAILABLE);
  EXPECT_EQ(health.models(1).version(), "3");
  EXPECT_EQ(health.models(1).state(), v1::ModelVersionStatus::FAILED);
  EXPECT_THAT(health.models(1).reason(), HasSubstr("weights are corrupt"));
}

TEST_F(ModelRepositoryServer, EveryResponseNamesTheVersionAndDigestThatRanIt) {
  repo_.Put("parts", 4);
  ASSERT_TRUE(Start().ok());
  v1::ClassifyResponse response;
  ASSERT_TRUE(Classify("parts", 0, &response).ok());
  EXPECT_EQ(response.model().name(), "parts");  // the folder names the model
  EXPECT_EQ(response.model().version(), "4");
  EXPECT_EQ(response.model().variant(), "fp32");
  EXPECT_EQ(response.predictions(0).index(), 3);
}

TEST_F(ModelRepositoryServer, NewVersionTakesNewRequestsWhileAdmittedOnesFinishOnTheOld) {
  repo_.Put("parts", 1);
  ASSERT_TRUE(Start().ok());
  FakeBackend* old_backend = repo_.backend("parts", 1);
  old_backend->Hold();
  auto admitted = std::async(std::launch::async, [this] {
    v1::ClassifyResponse response;
    grpc::Status status = Classify("", 0, &response);
    return std::make_pair(status, response.model().version());
  });
  old_backend->WaitForEntered(1);

  repo_.Put("parts", 2);
  Reload();
  EXPECT_EQ(VersionServing(), "2");  // new requests: the new version, at once
  EXPECT_THAT(States(), ElementsAre("parts/2 AVAILABLE default", "parts/1 UNLOADING"));

  old_backend->Release();
  auto [status, version] = admitted.get();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(version, "1");  // finished on the version that admitted it
  EXPECT_TRUE(WaitForStates({"parts/2 AVAILABLE default"}));  // then released
}

TEST_F(ModelRepositoryServer, FailedVersionLeavesTheOldServingAndIsRetriedOnlyWhenItChanges) {
  repo_.Put("parts", 1);
  ASSERT_TRUE(Start().ok());
  repo_.Put("parts", 2, "half copied");
  Reload();
  EXPECT_EQ(VersionServing(), "1");
  EXPECT_THAT(States(), ElementsAre("parts/1 AVAILABLE default", "parts/2 FAILED"));
  Reload();
  EXPECT_EQ(repo_.loads("parts", 2), 1);  // unchanged folder: not tried again

  repo_.Put("parts", 2, "ok");  // the copy finished (a new size: the folder changed)
  Reload();
  EXPECT_EQ(repo_.loads("parts", 2), 2);
  EXPECT_EQ(VersionServing(), "2");
  EXPECT_TRUE(WaitForStates({"parts/2 AVAILABLE default"}));
}

TEST_F(ModelRepositoryServer, SpecificPolicyServesExactlyThePinnedVersions) {
  for (int version : {1, 2, 3}) repo_.Put("parts", version);
  repo_.Policy("parts", R"({"policy": "specific", "versions": [2, 1]})");
  ASSERT_TRUE(Start().ok());
  EXPECT_EQ(VersionServing(), "2");  // the highest pinned one is the default
  v1::ClassifyResponse response;
  ASSERT_TRUE(Classify("parts", 1, &response).ok());
  EXPECT_EQ(response.model().version(), "1");
  grpc::Status status = Classify("parts", 3, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("available: 1, 2"));

  repo_.Policy("parts", R"({"policy": "latest"})");
  Reload();
  EXPECT_EQ(VersionServing(), "3");
  EXPECT_TRUE(WaitForStates({"parts/3 AVAILABLE default"}));
}

TEST_F(ModelRepositoryServer, MalformedPolicyKeepsWhatServes) {
  repo_.Put("parts", 1);
  ASSERT_TRUE(Start().ok());
  repo_.Put("parts", 2);
  repo_.Policy("parts", R"({"policy": "newest"})");
  Reload();
  EXPECT_EQ(VersionServing(), "1");
}

TEST_F(ModelRepositoryServer, RequestsNameTheirModelAndUnknownOnesListTheModels) {
  repo_.Put("gears", 1);
  repo_.Put("parts", 5);
  ServerOptions options;
  options.default_model = "parts";
  ASSERT_TRUE(Start(options).ok());
  EXPECT_EQ(VersionServing(), "5");
  v1::ClassifyResponse response;
  ASSERT_TRUE(Classify("gears", 0, &response).ok());
  EXPECT_EQ(response.model().name(), "gears");
  grpc::Status status = Classify("bolts", 0, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("models: gears, parts"));
  EXPECT_EQ(ModelHealth("gears"), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(ModelHealth("bolts"), grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN);

  // Batch items and stream frames route by their own model field.
  v1::BatchClassifyRequest batch;
  for (const char* model : {"gears", "parts", "bolts"}) {
    v1::ClassifyRequest* item = batch.add_items();
    *item->mutable_image() = TaggedImage(2);
    item->set_model(model);
  }
  v1::BatchClassifyResponse answers;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->BatchClassify(&context, batch, &answers).ok());
  EXPECT_EQ(answers.results(0).response().model().name(), "gears");
  EXPECT_EQ(answers.results(1).response().model().name(), "parts");
  EXPECT_EQ(answers.results(2).status().code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ModelRepositoryServer, SeveralModelsWithoutADefaultNeedTheirNameInEachRequest) {
  repo_.Put("gears", 1);
  repo_.Put("parts", 1);
  ASSERT_TRUE(Start().ok());
  v1::ClassifyResponse response;
  grpc::Status status = Classify("", 0, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("--default_model"));
  EXPECT_TRUE(Classify("parts", 0, &response).ok());
}

TEST_F(ModelRepositoryServer, RemovedVersionsAndModelsAreUnloaded) {
  repo_.Put("gears", 1);
  repo_.Put("parts", 1);
  repo_.Put("parts", 2);
  ServerOptions options;
  options.default_model = "parts";
  ASSERT_TRUE(Start(options).ok());
  repo_.Remove("parts/2");  // a bad version taken back: the previous one serves again
  repo_.Remove("gears");
  Reload();
  EXPECT_EQ(VersionServing(), "1");
  EXPECT_TRUE(WaitForStates({"parts/1 AVAILABLE default"}));
  EXPECT_EQ(ModelHealth("gears"), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

TEST_F(ModelRepositoryServer, VersionThatDoesNotFitTheMemoryBudgetIsRefusedOrSwappedUnloadFirst) {
  const std::string weights = "ok" + std::string(98, 'w');  // 100 bytes
  repo_.Put("parts", 1, weights);
  ServerOptions options;
  options.model_file = "fake.txt";
  options.max_model_memory_bytes = 150;
  ASSERT_TRUE(Start(options).ok());
  repo_.Put("parts", 2, weights);
  Reload();
  EXPECT_EQ(VersionServing(), "1");
  v1::HealthResponse health;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->Health(&context, v1::HealthRequest(), &health).ok());
  ASSERT_EQ(health.models_size(), 2);
  EXPECT_EQ(health.models(1).state(), v1::ModelVersionStatus::FAILED);
  EXPECT_THAT(health.models(1).reason(), HasSubstr("--max_model_memory_mb"));
  EXPECT_EQ(repo_.loads("parts", 2), 0);  // refused before loading anything
  server_->Shutdown();

  options.unload_first_over_memory = true;
  ASSERT_TRUE(Start(options).ok());  // loads 2 (latest) at start
  repo_.Put("parts", 3, weights);
  Reload();
  EXPECT_EQ(VersionServing(), "3");
  EXPECT_TRUE(WaitForStates({"parts/3 AVAILABLE default"}));
}

// Golden images: 4x4 PNGs of one gray value, which the fake model answers
// with class c<value mod 10>.
void PutGoldenSet(const std::string& dir, const std::string& json, const std::vector<int>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    std::vector<uchar> png;
    cv::imencode(".png", cv::Mat(4, 4, CV_8UC1, cv::Scalar(values[i])), png);
    std::ofstream(absl::StrCat(dir, "/g", i, ".png"), std::ios::binary)
        .write(reinterpret_cast<const char*>(png.data()), png.size());
  }
  std::ofstream(dir + "/golden.json") << json;
}

TEST_F(ModelRepositoryServer, VersionFailingItsGoldenImagesNeverServes) {
  repo_.Put("parts", 1);
  ASSERT_TRUE(Start().ok());
  repo_.Put("parts", 2);
  PutGoldenSet(repo_.root() + "/parts/2",
               R"({"min_accuracy": 1.0, "images": [{"file": "g0.png", "label": "c3"},
                                                   {"file": "g1.png", "label": "c4"}]})",
               {3, 5});  // the second comes out c5
  Reload();
  EXPECT_EQ(VersionServing(), "1");
  v1::HealthResponse health;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->Health(&context, v1::HealthRequest(), &health).ok());
  ASSERT_EQ(health.models_size(), 2);
  EXPECT_EQ(health.models(1).state(), v1::ModelVersionStatus::FAILED);
  EXPECT_THAT(health.models(1).reason(),
              HasSubstr("golden images: 1 of 2 right (0.5), below min_accuracy 1: g1.png: c5, "
                        "expected c4"));

  repo_.Put("parts", 3);
  PutGoldenSet(repo_.root() + "/parts/3",
               R"({"min_accuracy": 0.5, "images": [{"file": "g0.png", "label": "c3"},
                                                   {"file": "g1.png", "label": "c4"}]})",
               {3, 5});
  Reload();
  EXPECT_EQ(VersionServing(), "3");

  repo_.Put("parts", 4);
  PutGoldenSet(repo_.root() + "/parts/4", R"({"images": [{"file": "g0.png", "label": "Bag"}]})",
               {3});
  Reload();
  EXPECT_EQ(VersionServing(), "3");
  EXPECT_THAT(States(), ::testing::Contains("parts/4 FAILED"));
}

TEST_F(ModelRepositoryServer, PollingPicksUpANewVersion) {
  repo_.Put("parts", 1);
  ServerOptions options;
  options.repository_poll_interval = absl::Milliseconds(50);
  ASSERT_TRUE(Start(options).ok());
  repo_.Put("parts", 2);
  clock_.Advance(absl::Milliseconds(49));
  // An absence check: a manager that polled early would load it in this time.
  EXPECT_FALSE(WaitForDefault("parts", "2", absl::Milliseconds(300))) << "polled too early";
  EXPECT_EQ(repo_.loads("parts", 2), 0);
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(WaitForDefault("parts", "2"));
  EXPECT_EQ(VersionServing(), "2");
}

TEST_F(ModelRepositoryServer, StartFailsNamingEachVersionWhenNothingLoads) {
  repo_.Put("parts", 1, "truncated model.pt");
  absl::Status started = Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(started.message(), HasSubstr("parts/1: truncated model.pt"));
  EXPECT_EQ(Start().code(), absl::StatusCode::kFailedPrecondition);
  FakeRepository empty;
  EXPECT_EQ(MatidServer::CreateWithRepository({}, empty.root(), empty.Loader()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ModelRepositoryServer, AdminPinsLoadsAndUnloadsThroughThePolicyFile) {
  for (int version : {1, 2, 3}) repo_.Put("parts", version);
  repo_.Put("parts", 4, "bad weights");
  ASSERT_TRUE(Start().ok());
  EXPECT_EQ(VersionServing(), "3");
  auto call = [this](auto method, const auto& request) {
    v1::ListModelsResponse response;
    grpc::ClientContext context;
    grpc::Status status = ((*admin_).*method)(&context, request, &response);
    return std::make_pair(status, response);
  };
  v1::PinRequest pin;
  pin.set_model("parts");
  pin.add_versions(1);
  auto [pinned, listed] = call(&v1::ModelAdmin::Stub::Pin, pin);
  ASSERT_TRUE(pinned.ok()) << pinned.error_message();
  EXPECT_EQ(VersionServing(), "1");
  EXPECT_EQ(*ReadFileContents(repo_.root() + "/parts/version_policy.json"),
            "{\"policy\": \"specific\", \"versions\": [1]}\n");

  v1::VersionRequest load;
  load.set_model("parts");
  load.set_version(2);
  ASSERT_TRUE(call(&v1::ModelAdmin::Stub::Load, load).first.ok());
  EXPECT_EQ(VersionServing(), "2");
  v1::ClassifyResponse response;
  EXPECT_TRUE(Classify("parts", 1, &response).ok());  // 1 still pinned beside it

  load.set_version(4);
  auto [failed, after_failure] = call(&v1::ModelAdmin::Stub::Load, load);
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(failed.error_message(), HasSubstr("bad weights"));
  EXPECT_EQ(VersionServing(), "2");  // the serving version stays, and so does the policy
  EXPECT_EQ(*ReadFileContents(repo_.root() + "/parts/version_policy.json"),
            "{\"policy\": \"specific\", \"versions\": [1, 2]}\n");

  v1::VersionRequest unload;
  unload.set_model("parts");
  unload.set_version(2);
  ASSERT_TRUE(call(&v1::ModelAdmin::Stub::Unload, unload).first.ok());
  EXPECT_EQ(VersionServing(), "1");
  unload.set_version(3);  // not served: nothing to do
  ASSERT_TRUE(call(&v1::ModelAdmin::Stub::Unload, unload).first.ok());
  unload.set_version(1);
  auto [last, unused] = call(&v1::ModelAdmin::Stub::Unload, unload);
  EXPECT_EQ(last.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(last.error_message(), HasSubstr("only one"));

  v1::PinRequest unpin;
  unpin.set_model("parts");
  ASSERT_TRUE(call(&v1::ModelAdmin::Stub::Pin, unpin).first.ok());
  EXPECT_EQ(VersionServing(), "3");  // latest again: 4 is FAILED

  pin.set_model("bolts");
  EXPECT_EQ(call(&v1::ModelAdmin::Stub::Pin, pin).first.error_code(), grpc::StatusCode::NOT_FOUND);
  pin.set_model("parts");
  pin.add_versions(9);
  auto [missing, unused2] = call(&v1::ModelAdmin::Stub::Pin, pin);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(missing.error_message(), HasSubstr("versions: 1, 2, 3, 4"));
  auto [list, models] = call(&v1::ModelAdmin::Stub::ListModels, v1::ListModelsRequest());
  ASSERT_TRUE(list.ok());
  EXPECT_GE(models.models_size(), 1);
}

// Two operators loading different versions at once: each Load adds to the
// versions the policy file holds when it writes, so both stay served (a
// Load that read the policy before the other wrote used to drop it).
TEST_F(ModelRepositoryServer, ConcurrentLoadsAndUnloadsEachKeepTheOthersChange) {
  for (int version : {1, 2, 3, 4}) repo_.Put("parts", version);
  ASSERT_TRUE(Start().ok());
  ModelManager& manager = const_cast<ModelManager&>(server_->models());
  const std::string policy_path = repo_.root() + "/parts/version_policy.json";
  // Runs both changes at the same moment; their statuses.
  auto at_once = [](std::function<absl::Status()> first, std::function<absl::Status()> second) {
    std::promise<void> go;
    std::shared_future<void> started = go.get_future().share();
    auto run = [started](std::function<absl::Status()> change) {
      started.wait();
      return change();
    };
    auto one = std::async(std::launch::async, run, std::move(first));
    auto other = std::async(std::launch::async, run, std::move(second));
    go.set_value();
    return std::make_pair(one.get(), other.get());
  };
  for (int round = 0; round < 8; ++round) {
    ASSERT_TRUE(manager.Pin("parts", {1}).ok());
    auto [second, third] =
        at_once([&] { return manager.Load("parts", 2); }, [&] { return manager.Load("parts", 3); });
    ASSERT_TRUE(second.ok());
    ASSERT_TRUE(third.ok());
    ASSERT_EQ(*ReadFileContents(policy_path),
              "{\"policy\": \"specific\", \"versions\": [1, 2, 3]}\n")
        << "round " << round;

    auto [without_two, with_four] = at_once([&] { return manager.Unload("parts", 2); },
                                            [&] { return manager.Load("parts", 4); });
    ASSERT_TRUE(without_two.ok());
    ASSERT_TRUE(with_four.ok());
    ASSERT_EQ(*ReadFileContents(policy_path),
              "{\"policy\": \"specific\", \"versions\": [1, 3, 4]}\n")
        << "round " << round;
  }
}

// --- shadow versions --------------------------------------------------------

class ShadowServer : public ModelRepositoryServer {
 protected:
  // Normal priority for the shadow's worker: under SCHED_IDLE it would get
  // no CPU while other tests run beside this one, and exact counts need it.
  absl::Status Start(ServerOptions options = {}) {
    options.shadow_idle_priority = false;
    return ModelRepositoryServer::Start(options);
  }

  // Classifies tags first..first+count-1 one after the other through the
  // default version; every answer must come from `serving`.
  void ClassifyTags(int first, int count, const std::string& serving = "1") {
    for (int tag = first; tag < first + count; ++tag) {
      v1::ClassifyResponse response;
      ASSERT_TRUE(Classify("parts", 0, &response, tag).ok());
      EXPECT_EQ(response.model().version(), serving);
    }
  }
  grpc::Status Report(v1::ShadowReport* report) {
    v1::ShadowReportRequest request;
    request.set_model("parts");
    grpc::ClientContext context;
    return admin_->GetShadowReport(&context, request, report);
  }
  // Classifies tags first..first+count-1 in chunks of 8 (half the shadow's
  // queue), waiting after each until the shadow has compared
  // `compared_per_chunk` more, so a busy machine cannot make it skip any.
  void ClassifyTagsInStep(int first, int count, int64_t compared_per_chunk) {
    v1::ShadowReport report;
    ASSERT_TRUE(Report(&report).ok());
    int64_t compared = report.compared();
    for (int tag = first; tag < first + count; tag += 8) {
      ClassifyTags(tag, 8);
      compared += compared_per_chunk;
      ASSERT_EQ(ReportWhenCompared(compared).compared(), compared);
    }
  }
  // The report once `compared` images are compared (the shadow answers
  // after the primary), or the last one after 10 s.
  v1::ShadowReport ReportWhenCompared(int64_t compared) {
    v1::ShadowReport report;
    for (int i = 0; i < 1000; ++i) {
      report.Clear();
      if (Report(&report).ok() && report.compared() >= compared) break;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return report;
  }
};

TEST_F(ShadowServer, TheSameModelAsShadowAgreesOnEveryImage) {
  repo_.Put("parts", 1);
  repo_.Put("parts", 2);
  repo_.Policy("parts", R"({"policy": "specific", "versions": [1],
                            "shadow": {"version": 2, "fraction": 1.0}})");
  ASSERT_TRUE(Start().ok());
  EXPECT_THAT(States(), ElementsAre("parts/1 AVAILABLE default", "parts/2 AVAILABLE"));
  ClassifyTagsInStep(0, 40, 8);
  const v1::ShadowReport report = ReportWhenCompared(40);
  EXPECT_EQ(report.compared(), 40);
  EXPECT_EQ(report.agreements(), 40);
  EXPECT_DOUBLE_EQ(report.agreement(), 1.0);
  EXPECT_EQ((report.primary_version()), "1");
  EXPECT_EQ(report.shadow_version(), "2");
  ASSERT_EQ(report.confusion_size(), 10);
  for (int label = 0; label < 10; ++label) {
    EXPECT_EQ(report.confusion(label).shadow(label), 4) << label;  // tags 0..39: 4 of each
  }
  EXPECT_GT(report.shadow_latency_p99_ms(), 0);
  EXPECT_TRUE(report.skipped().empty());
  v1::HealthResponse health;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->Health(&context, v1::HealthRequest(), &health).ok());
  ASSERT_EQ(health.models_size(), 2);
  EXPECT_FALSE(health.models(0).is_shadow());
  EXPECT_TRUE(health.models(1).is_shadow());
}

TEST_F(ShadowServer, AShadowThatDiffersOnAKnownSubsetMeasuresThatAgreement) {
  repo_.Put("parts", 1);
  repo_.Put("parts", 2, "ok-disagree4");  // tags divisible by 4: the next class
  repo_.Policy("parts", R"({"shadow": {"version": 2, "fraction": 0.5}, "policy": "specific",
                            "versions": [1]})");
  ASSERT_TRUE(Start().ok());
  ClassifyTagsInStep(0, 80, 4);
  // Half the images are sampled, evenly: image n when floor((n + 1) / 2)
  // passes an integer, so tags 1, 3, ..., 79, none of them divisible by 4.
  v1::ShadowReport report = ReportWhenCompared(40);
  EXPECT_EQ(report.compared(), 40);
  EXPECT_EQ(report.agreements(), 40);

  // All of them: a quarter of the tags differ.
  v1::ShadowRequest every;
  every.set_model("parts");
  every.set_version(2);
  every.set_fraction(1.0);
  {
    v1::ListModelsResponse listed;
    grpc::ClientContext context;
    ASSERT_TRUE(admin_->SetShadow(&context, every, &listed).ok());
  }
  ClassifyTagsInStep(0, 80, 8);  // a new comparison: the fraction changed
  report = ReportWhenCompared(80);
  EXPECT_EQ(report.compared(), 80);
  EXPECT_EQ(report.agreements(), 60);
  EXPECT_DOUBLE_EQ(report.agreement(), 0.75);
  EXPECT_EQ(report.confusion(0).shadow(1), 4);  // tags 0, 20, 40, 60: class 0 -> 1
  EXPECT_EQ(report.confusion(4).shadow(5), 4);  // tags 4, 24, 44, 64
  EXPECT_EQ(report.confusion(1).shadow(1), 8);  // odd classes never differ
  EXPECT_LT(report.mean_score_difference(), 1e-9);
  EXPECT_GT(report.mean_score_difference(), -1e-9);
}

TEST_F(ShadowServer, ShadowWorkNeverDelaysThePrimaryAndIsSkippedUnderLoad) {
  repo_.Put("parts", 1);
  repo_.Put("parts", 2);
  repo_.Policy("parts", R"({"policy": "specific", "versions": [1],
                            "shadow": {"version": 2, "fraction": 1.0}})");
  ServerOptions options;
  options.batcher.max_batch_size = 2;  // the shadow's queue holds 4
  ASSERT_TRUE(Start(options).ok());
  FakeBackend* shadow = repo_.backend("parts", 2);
  shadow->Hold();       // a stuck shadow: the primary must not notice
  ClassifyTags(0, 12);  // every answer arrives while the shadow is stuck
  shadow->WaitForEntered(1);
  v1::ShadowReport report;
  ASSERT_TRUE(Report(&report).ok());
  EXPECT_EQ(report.compared(), 0);
  // One batch runs (stuck), 4 wait in the shadow's queue, the rest are skipped.
  EXPECT_GE(report.skipped().at("shadow_busy"), 6);

  // A busy primary: images offered while its queue is not empty are skipped.
  FakeBackend* primary = repo_.backend("parts", 1);
  const int entered = static_cast<int>(primary->batch_sizes().size());
  primary->Hold();
  std::vector<std::future<grpc::Status>> calls;
  for (int tag = 0; tag < 6; ++tag) {
    calls.push_back(std::async(std::launch::async, [this, tag] {
      v1::ClassifyResponse response;
      return Classify("parts", 0, &response, tag);
    }));
  }
  primary->WaitForEntered(entered + 1);
  // The others queue behind the held batch (of at most 2).
  for (int i = 0; i < 500 && server_->models().queue_depth() < 4; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GE(server_->models().queue_depth(), 4);
  primary->Release();
  for (auto& call : calls) EXPECT_TRUE(call.get().ok());
  ASSERT_TRUE(Report(&report).ok());
  EXPECT_GE(report.skipped().at("primary_busy"), 1);
  shadow->Release();
  report = ReportWhenCompared(5);
  EXPECT_GE(report.compared(), 5);  // what was queued for the shadow is compared after all
}

TEST_F(ShadowServer, AdminSetsAndClearsTheShadowAndRefusesOneThatCannotCompare) {
  repo_.Put("parts", 1);
  repo_.Put("parts", 2);
  repo_.Put("parts", 3, "ok-labels3");
  repo_.Policy("parts", R"({"policy": "specific", "versions": [1]})");
  ASSERT_TRUE(Start().ok());
  auto set = [this](int64_t version, double fraction) {
    v1::ShadowRequest request;
    request.set_model("parts");
    request.set_version(version);
    request.set_fraction(fraction);
    v1::ListModelsResponse listed;
    grpc::ClientContext context;
    return admin_->SetShadow(&context, request, &listed);
  };
  v1::ShadowReport report;
  grpc::Status none = Report(&report);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(none.error_message(), HasSubstr("no shadow version"));

  ASSERT_TRUE(set(2, 0.25).ok());
  EXPECT_EQ(*ReadFileContents(repo_.root() + "/parts/version_policy.json"),
            "{\"policy\": \"specific\", \"versions\": [1], \"shadow\": {\"version\": 2, "
            "\"fraction\": 0.25}}\n");
  ASSERT_TRUE(Report(&report).ok());
  EXPECT_EQ(report.fraction(), 0.25);

  grpc::Status refused = set(3, 1.0);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("cannot be compared"));
  ASSERT_TRUE(Report(&report).ok());  // the policy was put back: 2 still shadows
  EXPECT_EQ(report.shadow_version(), "2");
  EXPECT_EQ(set(2, 1.5).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(set(9, 1.0).error_code(), grpc::StatusCode::NOT_FOUND);

  // Pinning keeps the shadow; clearing it unloads the version.
  v1::VersionRequest load;
  load.set_model("parts");
  load.set_version(1);
  {
    v1::ListModelsResponse listed;
    grpc::ClientContext context;
    ASSERT_TRUE(admin_->Load(&context, load, &listed).ok());
  }
  ASSERT_TRUE(Report(&report).ok());
  ASSERT_TRUE(set(0, 0).ok());
  EXPECT_EQ(Report(&report).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(WaitForStates({"parts/1 AVAILABLE default"}));
}

// Promotion and rollback: a fast rule check and the events the manager reports.
class PromotionServer : public ShadowServer {
 protected:
  static constexpr absl::Duration kRuleCheckInterval = absl::Milliseconds(20);

  absl::Status Start(ServerOptions options = {}) {
    options.rule_check_interval = kRuleCheckInterval;  // of the fake clock
    absl::Status started = ShadowServer::Start(options);
    if (!started.ok()) return started;
    Manager().SetEventListener([this](EventMessage event) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        events_.push_back(std::move(event));
      }
      event_came_.notify_all();
    });
    return absl::OkStatus();
  }
  // The events so far, once there are at least `count` (or after 10 s).
  std::vector<EventMessage> Events(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    event_came_.wait_for(lock, std::chrono::seconds(10), [&] { return events_.size() >= count; });
    return events_;
  }
  // Moves the manager's clock by `by` (one rule-check interval) and waits
  // for the check that follows, `steps` times: each step is exactly one
  // check of the rules, however fast or slow the machine.
  void StepRules(int steps = 1, absl::Duration by = kRuleCheckInterval) {
    for (int i = 0; i < steps; ++i) {
      const uint64_t done = Manager().rule_checks_done();
      clock_.Advance(by);
      ASSERT_TRUE(Manager().WaitForRuleChecks(done + 1, absl::Seconds(10)))
          << "the rules were not checked";
    }
  }
  // The version serving "parts" by the manager's states (no request sent,
  // so nothing is added to the figures the rules read).
  std::string DefaultVersion() {
    for (const ModelVersionStatus& status : Manager().Statuses()) {
      if (status.model == "parts" && status.is_default) return status.version;
    }
    return "";
  }
  // Steps the rules until `version` serves (at most 100 checks).
  bool StepUntilServing(const std::string& version) {
    for (int i = 0; i < 100 && DefaultVersion() != version; ++i) StepRules();
    return DefaultVersion() == version;
  }
  grpc::Status AdminCall(const std::string& command) {
    v1::ModelRequest request;
    request.set_model("parts");
    v1::ListModelsResponse listed;
    grpc::ClientContext context;
    return command == "promote" ? admin_->Promote(&context, request, &listed)
                                : admin_->Rollback(&context, request, &listed);
  }
  std::string PolicyFile() {
    return *ReadFileContents(repo_.root() + "/parts/version_policy.json");
  }

  std::mutex mu_;
  std::condition_variable event_came_;
  std::vector<EventMessage> events_;  // guarded by mu_
};

void ExpectEvent(const EventMessage& event, const std::string& type, const std::string& trigger,
                 int64_t from_version, int64_t to_version) {
  EXPECT_EQ(event.type, type);
  EXPECT_EQ(event.trigger, trigger);
  EXPECT_EQ(event.from_version, from_version);
  EXPECT_EQ(event.to_version, to_version);
}

TEST_F(PromotionServer, ThePolicyPromotesTheShadowOnceItsRuleHoldsThenClosesTheWindow) {
  repo_.Put("parts", 1);
  repo_.Put("parts", 2);
  repo_.Policy("parts", R"({"policy": "specific", "versions": [1],
      "shadow": {"version": 2, "fraction": 1.0,
                 "promote_when": {"min_compared": 16, "min_agreement": 0.99,
                                  "max_shadow_p99_ms": 10000},
                 "rollback_when": {"window_seconds": 3600}}})");
  ASSERT_TRUE(Start().ok());
  ClassifyTagsInStep(0, 8, 8);
  StepRules(10);  // 8 compared is not enough
  EXPECT_THAT(States(), ElementsAre("parts/1 AVAILABLE default", "parts/2 AVAILABLE"));
  EXPECT_TRUE(Events(0).empty());

  // 8 more: the 16th comparison comes after the 16th answer, so all of
  // them are version 1's; then the rule holds.
  ClassifyTags(8, 8);
  ASSERT_TRUE(StepUntilServing("2"));
  std::vector<EventMessage> events = Events(1);
  ASSERT_EQ(events.size(), 1u);
  ExpectEvent(events[0], "promotion", "policy", 1, 2);
  // The rules are checked only when the test steps the clock, so the
  // figures are exactly those of the 16 images.
  EXPECT_THAT(events[0].reason, HasSubstr("16 compared >= 16, agreement 1.0000 >= 0.99"));
  EXPECT_EQ(events[0].figures.at("compared"), 16);
  EXPECT_EQ(events[0].figures.at("window_seconds"), 3600);
  EXPECT_EQ(events[0].figures.at("agreement"), 1.0);
  // Pinned to 2, with version 1 kept loaded as the rollback target.
  EXPECT_THAT(PolicyFile(), HasSubstr("\"versions\": [2], \"rollback\": {\"version\": 1, "
                                      "\"promoted_version\": 2, \"until\": \""));
  EXPECT_THAT(States(), ElementsAre("parts/1 AVAILABLE", "parts/2 AVAILABLE default"));
  v1::ListModelsResponse listed;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(admin_->ListModels(&context, v1::ListModelsRequest(), &listed).ok());
  }
  ASSERT_EQ(listed.models_size(), 2);
  EXPECT_TRUE(listed.models(0).is_rollback_target());
  EXPECT_FALSE(listed.models(1).is_shadow());
  v1::ClassifyResponse old;
  EXPECT_TRUE(Classify("parts", 1, &old).ok());  // still there, by name
  StepRules(50);                                 // one second of the hour: still open
  EXPECT_EQ(Events(0).size(), 1u);
  EXPECT_THAT(States(), ElementsAre("parts/1 AVAILABLE", "parts/2 AVAILABLE default"));

  // Nothing crossed the rollback rule within the hour: the window closes,
  // version 1 goes.
  StepRules(1, absl::Hours(1));
  events = Events(2);
  ASSERT_EQ(events.size(), 2u);
  ExpectEvent(events[1], "rollback_window_closed", "policy", 1, 2);
  EXPECT_TRUE(WaitForStates({"parts/2 AVAILABLE default"}));
  EXPECT_EQ(PolicyFile(), "{\"policy\": \"specific\", \"versions\": [2]}\n");
}

TEST_F(PromotionServer, APromotedVersionWhoseModelFailsIsRolledBackByPolicy) {
  repo_.Put("parts", 1);
  repo_.Put("parts", 2);
  repo_.Policy("parts", R"({"policy": "specific", "versions": [1]})");
  ASSERT_TRUE(Start().ok());
  EXPECT_EQ(AdminCall("promote").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  grpc::Status no_window = AdminCall("rollback");
  EXPECT_EQ(no_window.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(no_window.error_message(), HasSubstr("no open rollback window"));

  v1::ShadowRequest shadow;
  shadow.set_model("parts");
  shadow.set_version(2);
  shadow.set_fraction(1.0);
  shadow.mutable_rollback_when()->set_max_error_rate(0.1);
  shadow.mutable_rollback_when()->set_min_images(10);
  {
    v1::ListModelsResponse listed;
    grpc::ClientContext context;
    ASSERT_TRUE(admin_->SetShadow(&context, shadow, &listed).ok());
  }
  ASSERT_TRUE(AdminCall("promote").ok());  // an operator's promotion: no rule needed
  EXPECT_EQ(VersionServing("parts"), "2");
  ASSERT_EQ(Events(1).at(0).trigger, "admin");

  repo_.backend("parts", 2)->set_failure(absl::InternalError("model forward failed: broken"));
  // With the one answer above, 9 failures make the 10 images the rule needs;
  // the rollback cannot come before them.
  for (int tag = 0; tag < 9; ++tag) {
    v1::ClassifyResponse response;
    EXPECT_EQ(Classify("parts", 0, &response, tag).error_code(), grpc::StatusCode::INTERNAL);
  }
  ASSERT_TRUE(StepUntilServing("1"));
  const std::vector<EventMessage> events = Events(2);
  ASSERT_EQ(events.size(), 2u);
  ExpectEvent(events[1], "rollback", "policy", 2, 1);
  // Version 2 answered the one call above, then failed 9 images; the rules
  // are checked only when the test steps the clock, after all of them.
  EXPECT_THAT(events[1].reason, HasSubstr(" > 0.1 over 10 images"));
  EXPECT_EQ(events[1].figures.at("errors"), 9);
  EXPECT_EQ(events[1].figures.at("images"), 10);
  EXPECT_EQ(PolicyFile(), "{\"policy\": \"specific\", \"versions\": [1]}\n");
  EXPECT_TRUE(WaitForStates({"parts/1 AVAILABLE default"}));
  EXPECT_EQ(AdminCall("rollback").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(PromotionServer, AnUnsureVersionIsPromotedByAgreementThenRolledBackForLowConfidence) {
  repo_.Put("parts", 1);
  repo_.Put("parts", 2, "ok-unsure");  // the same labels, top-1 score 0.3
  repo_.Policy("parts", R"({"policy": "specific", "versions": [1],
      "shadow": {"version": 2, "fraction": 1.0,
                 "promote_when": {"min_compared": 8, "min_agreement": 1, "max_shadow_p99_ms": 10000},
                 "rollback_when": {"low_confidence_below": 0.5, "max_low_confidence_ratio": 0.2,
                                   "min_images": 8}}})");
  ASSERT_TRUE(Start().ok());
  ClassifyTags(0, 8);  // all version 1's: the 8th comparison follows the 8th answer
  ASSERT_TRUE(StepUntilServing("2"));
  for (int tag = 0; tag < 8; ++tag) {
    v1::ClassifyResponse response;
    ASSERT_TRUE(Classify("parts", 0, &response, tag).ok());
  }
  ASSERT_TRUE(StepUntilServing("1"));
  const std::vector<EventMessage> events = Events(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, "promotion");
  EXPECT_EQ(events[1].type, "rollback");
  EXPECT_THAT(events[1].reason, HasSubstr("low-confidence ratio 1.0000 > 0.2"));
  EXPECT_EQ(events[1].figures.at("low_confidence"), 8);
  // The rolled-back version's policy has no shadow: it is not promoted again,
  // and with no rule left to watch the manager stops checking.
  EXPECT_EQ(Manager().Shadow("parts").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(VersionServing("parts"), "1");
  EXPECT_EQ(Events(0).size(), 2u);
}

TEST(PromotionRules, DecideOnTheFiguresAndNameThem) {
  PromotionRule promote{100, 0.95, absl::Milliseconds(50)};
  ShadowSnapshot shadow;
  shadow.compared = 99;
  shadow.agreements = 99;
  shadow.latency_p99 = absl::Milliseconds(10);
  EXPECT_FALSE(PromotionDue(promote, shadow).has_value());  // too few
  shadow.compared = 100;
  shadow.agreements = 94;
  EXPECT_FALSE(PromotionDue(promote, shadow).has_value());  // agreement 0.94
  shadow.agreements = 95;
  shadow.latency_p99 = absl::Milliseconds(51);
  EXPECT_FALSE(PromotionDue(promote, shadow).has_value());  // too slow
  shadow.latency_p99 = absl::Milliseconds(50);
  EXPECT_EQ(PromotionDue(promote, shadow).value_or(""),
            "100 compared >= 100, agreement 0.9500 >= 0.95, shadow p99 50.0 ms <= 50.0 ms");

  RollbackRule rollback;  // defaults: 1% errors, 20% under 0.5, after 100 images
  OutcomeSnapshot outcomes;
  outcomes.answered = 98;
  outcomes.failed = 1;
  outcomes.score_buckets[90] = 98;
  EXPECT_FALSE(RollbackDue(rollback, outcomes).has_value());  // 99 images: too few
  outcomes.failed = 2;
  EXPECT_EQ(RollbackDue(rollback, outcomes).value_or(""),
            "error rate 0.0200 > 0.01 over 100 images");
  outcomes.failed = 1;
  outcomes.answered = 99;
  outcomes.score_buckets[90] = 78;
  outcomes.score_buckets[49] = 21;  // 0.49..0.4999: under 0.5
  EXPECT_THAT(RollbackDue(rollback, outcomes).value_or(""),
              HasSubstr("low-confidence ratio 0.2121 > 0.2"));
  outcomes.score_buckets[49] = 19;
  outcomes.score_buckets[50] = 2;  // 0.50: not under 0.5
  EXPECT_FALSE(RollbackDue(rollback, outcomes).has_value());

  EXPECT_FALSE(ValidatePromotionRule({0, 0.9, absl::Seconds(1)}).ok());
  EXPECT_FALSE(ValidatePromotionRule({10, 1.5, absl::Seconds(1)}).ok());
  RollbackRule bad;
  bad.window = absl::ZeroDuration();
  EXPECT_THAT(ValidateRollbackRule(bad).message(), HasSubstr("window_seconds"));
}

TEST(VersionOutcomes, CountsAnswersFailuresAndScoresSinceASnapshot) {
  VersionOutcomes outcomes;
  outcomes.RecordAnswer(0.99f);
  const OutcomeSnapshot before = outcomes.Snapshot();
  outcomes.RecordAnswer(0.3f);
  outcomes.RecordAnswer(1.0f);
  outcomes.RecordAnswer(std::nanf(""));
  outcomes.RecordFailure();
  const OutcomeSnapshot since = outcomes.Snapshot().Since(before);
  EXPECT_EQ(since.answered, 3);
  EXPECT_EQ(since.failed, 1);
  EXPECT_EQ(since.AnsweredBelow(0.5f), 2);  // 0.3 and NaN
  EXPECT_EQ(since.AnsweredBelow(1.0f), 2);
  EXPECT_EQ(since.AnsweredBelow(1.01f), 3);
}

TEST_F(ShadowServer, DisagreeingImagesAreSavedForLabellingUpToTheBound) {
  repo_.Put("parts", 1);
  repo_.Put("parts", 2, "ok-disagree4");  // tags divisible by 4: the next class
  repo_.Policy("parts", R"({"policy": "specific", "versions": [1],
                            "shadow": {"version": 2, "fraction": 1.0}})");
  const fs::path dir = fs::path(repo_.root()) / "disagreements";
  ServerOptions options;
  options.shadow_disagreements_dir = dir.string();
  options.shadow_disagreements_max_files = 3;
  ASSERT_TRUE(Start(options).ok());
  ClassifyTagsInStep(0, 40, 8);  // tags 0, 4, ..., 36 disagree: 10 images
  v1::ShadowReport report;
  for (int i = 0; i < 500; ++i) {
    report.Clear();
    ASSERT_TRUE(Report(&report).ok());
    const auto full = report.disagreements_not_saved().find("folder_full");
    if (report.disagreements_saved() +
            (full == report.disagreements_not_saved().end() ? 0 : full->second) >=
        10) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(report.compared(), 40);
  EXPECT_EQ(report.disagreements_dir(), dir.string());
  EXPECT_EQ(report.disagreements_saved(), 3);
  EXPECT_EQ(report.disagreements_not_saved().at("folder_full"), 7);
  ASSERT_EQ(report.recent_disagreements_size(), 3);
  // Raw pixels: the model's input as a PNG, and a JSON of both answers.
  const std::string first = report.recent_disagreements(0);
  EXPECT_THAT(first, HasSubstr((dir / "parts" / "parts-v1-c0-vs-v2-c1-").string()));
  EXPECT_THAT(first, ::testing::EndsWith(".png"));
  const cv::Mat image = cv::imread(first, cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(image.empty());
  EXPECT_EQ(image.cols, 4);
  EXPECT_EQ(image.at<uint8_t>(0, 0), 0);  // tag 0
  const auto json = ReadFileContents(first.substr(0, first.size() - 4) + ".json");
  ASSERT_TRUE(json.ok());
  EXPECT_THAT(*json, HasSubstr("\"label\": \"c1\""));
  EXPECT_THAT(*json, HasSubstr("\"version\": \"2\""));
  int files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir / "parts")) ++files;
  EXPECT_EQ(files, 6);  // 3 images, 3 JSON files
}

TEST(DisagreementFolder, KeepsTheRequestBytesAndRefusesAFolderItCannotWrite) {
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("matid-disagree-", getpid());
  fs::remove_all(dir);
  auto folder = DisagreementFolder::Create(dir.string(), 10, 1);
  ASSERT_TRUE(folder.ok()) << folder.status();
  std::vector<uint8_t> png;
  ASSERT_TRUE(cv::imencode(".png", cv::Mat(6, 5, CV_8UC3, cv::Scalar(1, 2, 3)), png));
  std::promise<std::pair<std::string, std::string>> written;
  Disagreement d;
  d.model = "T-shirt/top model";
  d.primary_version = "3";
  d.shadow_version = "4";
  d.primary_label = "T-shirt/top";
  d.shadow_label = "Shirt";
  d.time = absl::FromUnixMillis(1764140400000);
  d.encoded = std::string(png.begin(), png.end());
  d.done = [&](const std::string& path, const std::string& not_saved) {
    written.set_value({path, not_saved});
  };
  (*folder)->Save(std::move(d));
  const auto [path, not_saved] = written.get_future().get();
  EXPECT_EQ(not_saved, "");
  EXPECT_EQ(path, (dir / "T-shirt_top_model" /
                   "T-shirt_top_model-v3-T-shirt_top-vs-v4-Shirt-1764140400000-1.png")
                      .string());
  EXPECT_EQ(*ReadFileContents(path), std::string(png.begin(), png.end()));
  folder->reset();
  fs::remove_all(dir);

  const fs::path file = fs::temp_directory_path() / absl::StrCat("matid-not-a-dir-", getpid());
  std::ofstream(file) << "x";
  auto refused = DisagreementFolder::Create((file / "sub").string(), 10, 1);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.status().message(), HasSubstr("--shadow_disagreements_dir"));
  EXPECT_EQ(DisagreementFolder::Create(dir.string(), 0, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (int64_t max_mb : {int64_t{0}, kMaxFolderMb + 1}) {
    auto no_bytes = DisagreementFolder::Create(dir.string(), 10, max_mb);
    EXPECT_EQ(no_bytes.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(no_bytes.status().message(), HasSubstr("--shadow_disagreements_max_mb"));
  }
  fs::remove(file);
  fs::remove_all(dir);
}

TEST(ShadowComparison, CountsConfusionAndLatencyPercentiles) {
  ShadowComparison comparison(3);
  for (int i = 1; i <= 100; ++i) {
    comparison.RecordCompared(i % 3, 0.9f, i % 10 == 0 ? (i + 1) % 3 : i % 3, 0.8f,
                              absl::Milliseconds(i));
  }
  comparison.RecordSkipped("primary_busy");
  comparison.RecordSkipped("primary_busy");
  const ShadowSnapshot snapshot = comparison.Snapshot();
  EXPECT_EQ(snapshot.compared, 100);
  EXPECT_EQ(snapshot.agreements, 90);
  EXPECT_DOUBLE_EQ(snapshot.agreement(), 0.9);
  EXPECT_NEAR(snapshot.score_difference_sum, -10.0, 1e-4);
  EXPECT_EQ(snapshot.latency_p50, absl::Milliseconds(51));
  EXPECT_EQ(snapshot.latency_p99, absl::Milliseconds(99));
  EXPECT_EQ(snapshot.skipped.at("primary_busy"), 2);
  int64_t total = 0;
  for (const auto& row : snapshot.confusion) {
    for (int64_t n : row) total += n;
  }
  EXPECT_EQ(total, 100);
}

TEST(AdminAccess, SocketLoopbackOrAListedCertificateOnly) {
  const AdminAccess access{.loopback = true, .client_subjects = {"CN=ops", "ops-laptop"}};
  // Peers as gRPC 1.51 writes them: IPv6 brackets escaped.
  for (const char* peer : {"ipv4:127.0.0.1:5000", "ipv6:%5B::1%5D:5000", "ipv6:[::1]:5000",
                           "ipv6:%5B::ffff:127.0.0.1%5D:80", "unix:/run/matid/admin.sock"}) {
    EXPECT_TRUE(CheckAdminAccess(peer, {}, access).ok()) << peer;
  }
  EXPECT_TRUE(CheckAdminAccess("ipv4:10.1.2.3:5000", {"CN=ops"}, access).ok());
  EXPECT_TRUE(CheckAdminAccess("ipv4:10.1.2.3:5000", {"CN=x,O=y", "ops-laptop"}, access).ok());
  absl::Status refused = CheckAdminAccess("ipv4:10.1.2.3:5000", {"CN=camera-1"}, access);
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("--admin_client_subjects"));
  EXPECT_THAT(refused.message(), HasSubstr("CN=camera-1"));
  EXPECT_FALSE(CheckAdminAccess("ipv6:%5B2001:db8::1%5D:5000", {}, access).ok());
  EXPECT_FALSE(CheckAdminAccess("ipv4:128.0.0.1:5000", {}, access).ok());
  // Other 127/8 addresses are proxies and neighbours (Istio's inbound 127.0.0.6).
  EXPECT_FALSE(CheckAdminAccess("ipv4:127.0.0.6:41000", {}, access).ok());
  EXPECT_FALSE(CheckAdminAccess("ipv4:127.1.2.3:41000", {}, access).ok());
}

TEST(AdminAccess, LoopbackGrantTurnedOffLeavesTheSocketAndCertificates) {
  const AdminAccess access{.loopback = false, .client_subjects = {"CN=ops"}};
  absl::Status refused = CheckAdminAccess("ipv4:127.0.0.1:5000", {}, access);
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("--admin_socket"));
  EXPECT_FALSE(CheckAdminAccess("ipv6:%5B::1%5D:5000", {}, access).ok());
  EXPECT_TRUE(CheckAdminAccess("unix:/run/matid/admin.sock", {}, access).ok());
  EXPECT_TRUE(CheckAdminAccess("ipv4:127.0.0.1:5000", {"CN=ops"}, access).ok());
}

TEST(VersionPolicy, ParsesLatestAndSpecificAndNamesMistakes) {
  EXPECT_TRUE(ParseVersionPolicy("{}")->latest());
  EXPECT_TRUE(ParseVersionPolicy(R"({"policy": "latest"})")->latest());
  EXPECT_THAT(ParseVersionPolicy(R"({"policy": "specific", "versions": [3, 1, 3]})")->versions,
              ElementsAre(1, 3));
  const auto shadowed = ParseVersionPolicy(R"({"shadow": {"version": 4, "fraction": 0.1}})");
  ASSERT_TRUE(shadowed.ok()) << shadowed.status();
  EXPECT_EQ(shadowed->shadow_version, 4);
  EXPECT_EQ(VersionPolicyJson(*shadowed),
            "{\"policy\": \"latest\", \"shadow\": {\"version\": 4, \"fraction\": 0.1}}\n");
  for (const char* bad : {R"({"policy": "newest"})", R"({"versions": [2]})",
                          R"({"policy": "specific"})", R"({"policy": "specific", "versions": [0]})",
                          R"({"shadow": {"version": 2, "fraction": 0}})",
                          R"({"shadow": {"version": 2, "fraction": 1.5}})",
                          R"({"shadow": {"version": -1, "fraction": 0.5}})",
                          R"({"shadow": {"version": 2, "fraction": 0.5,
                                         "promote_when": {"min_compared": 0}}})",
                          R"({"shadow": {"version": 2, "fraction": 0.5,
                                         "rollback_when": {"max_error_rate": 2}}})",
                          R"({"rollback": {"version": 1, "promoted_version": 1, "until": "x"}})",
                          R"({"rollback": {"version": 1, "promoted_version": 2,
                                           "until": "yesterday"}})",
                          "not json"}) {
    EXPECT_EQ(ParseVersionPolicy(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(VersionPolicy, RulesAndTheRollbackWindowSurviveARoundTrip) {
  const auto parsed = ParseVersionPolicy(R"({"policy": "specific", "versions": [3],
      "shadow": {"version": 4, "fraction": 0.5,
                 "promote_when": {"min_compared": 500, "min_agreement": 0.98,
                                  "max_shadow_p99_ms": 50},
                 "rollback_when": {"window_seconds": 60, "max_error_rate": 0}},
      "rollback": {"version": 2, "promoted_version": 3, "until": "2026-11-26T07:00:00Z",
                   "rule": {"min_images": 7}}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_TRUE(parsed->promote_when.has_value());
  EXPECT_EQ(parsed->promote_when->min_compared, 500);
  EXPECT_EQ(parsed->promote_when->max_shadow_p99, absl::Milliseconds(50));
  EXPECT_EQ(parsed->rollback_when.window, absl::Seconds(60));
  EXPECT_EQ(parsed->rollback_when.max_error_rate, 0);  // set to 0: not the default
  EXPECT_EQ(parsed->rollback_when.min_images, 100);    // unset: the default
  EXPECT_EQ(parsed->rollback.version, 2);
  EXPECT_EQ(parsed->rollback.rule.min_images, 7);
  EXPECT_EQ(absl::FormatTime(absl::RFC3339_sec, parsed->rollback.until, absl::UTCTimeZone()),
            "2026-11-26T07:00:00+00:00");
  const std::string json = VersionPolicyJson(*parsed);
  const auto again = ParseVersionPolicy(json);
  ASSERT_TRUE(again.ok()) << again.status() << json;
  EXPECT_EQ(VersionPolicyJson(*again), json);
  EXPECT_THAT(json, HasSubstr("\"until\": \"2026-11-26T07:00:00.000Z\""));
}

TEST(ScanModelRepository, SeesPositiveIntegerVersionFoldersOnly) {
  FakeRepository repo;
  repo.Put("parts", 10);
  repo.Put("parts", 9);
  for (const char* other : {"parts/.publishing-3", "parts/007", "parts/0", "parts/v2"}) {
    fs::create_directories(fs::path(repo.root()) / other);
  }
  repo.Put("gears", 1);
  repo.Policy("gears", "{\"policy\": 7}");
  auto models = ScanModelRepository(repo.root());
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 2u);
  EXPECT_EQ((*models)[0].name, "gears");
  EXPECT_FALSE((*models)[0].policy_status.ok());
  EXPECT_THAT((*models)[0].policy_status.message(), HasSubstr("version_policy.json"));
  EXPECT_EQ((*models)[1].name, "parts");
  EXPECT_THAT((*models)[1].versions, ElementsAre(9, 10));
  EXPECT_EQ(ScanModelRepository(repo.root() + "/nowhere").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace matid
