#include "client/classify/file_classifier.h"

#include <grpcpp/client_context.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/backoff.h"
#include "common/file_contents.h"

namespace matid {
namespace {

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::UNAVAILABLE;
}

// Calls `rpc` until it succeeds, fails for good, or attempts run out; sleeps
// with exponential backoff and jitter between attempts.
template <typename Rpc>
grpc::Status CallWithRetry(const FileClassifierOptions& options, Rpc rpc) {
  Backoff backoff(absl::Milliseconds(20), absl::Seconds(2));
  grpc::Status status;
  for (int attempt = 1; attempt <= options.max_attempts; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoMilliseconds(options.timeout));
    status = rpc(&context);
    if (status.ok() || !Retryable(status.error_code())) return status;
    absl::SleepFor(backoff.Next());
  }
  return status;
}

void FillTop(const google::protobuf::RepeatedPtrField<v1::Prediction>& predictions,
             ClassifyResult* result) {
  for (const auto& p : predictions) result->top.push_back({p.label(), p.score()});
}

void Fail(ClassifyResult* result, const std::string& code, const std::string& error) {
  result->status_code = code;
  result->error = error;
}

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// One image through Classify.
void ClassifyOne(v1::Classifier::StubInterface* stub, const FileClassifierOptions& options,
                 std::string bytes, ClassifyResult* result) {
  const auto start = std::chrono::steady_clock::now();
  v1::ClassifyRequest request;
  request.mutable_image()->set_encoded(std::move(bytes));
  request.set_top_k(options.top_k);
  request.set_request_id(result->path);
  v1::ClassifyResponse response;
  grpc::Status status = CallWithRetry(
      options, [&](grpc::ClientContext* c) { return stub->Classify(c, request, &response); });
  result->latency_ms = MillisecondsSince(start);
  if (status.ok()) {
    FillTop(response.predictions(), result);
  } else {
    Fail(result, CodeName(status.error_code()), status.error_message());
  }
}

// Several images through one BatchClassify; each keeps its own status.
void ClassifyBatch(v1::Classifier::StubInterface* stub, const FileClassifierOptions& options,
                   std::vector<std::string> bytes, const std::vector<ClassifyResult*>& results) {
  const auto start = std::chrono::steady_clock::now();
  v1::BatchClassifyRequest request;
  for (size_t j = 0; j < results.size(); ++j) {
    v1::ClassifyRequest* item = request.add_items();
    item->mutable_image()->set_encoded(std::move(bytes[j]));
    item->set_top_k(options.top_k);
    item->set_request_id(results[j]->path);
  }
  v1::BatchClassifyResponse response;
  grpc::Status status = CallWithRetry(
      options, [&](grpc::ClientContext* c) { return stub->BatchClassify(c, request, &response); });
  const double latency = MillisecondsSince(start);
  for (size_t j = 0; j < results.size(); ++j) {
    ClassifyResult& result = *results[j];
    result.latency_ms = latency;
    if (!status.ok()) {
      Fail(&result, CodeName(status.error_code()), status.error_message());
    } else if (static_cast<int>(j) >= response.results_size()) {
      Fail(&result, "INTERNAL", "server returned fewer results than items");
    } else {
      const v1::BatchItemResult& item = response.results(static_cast<int>(j));
      if (item.status().code() == 0) {
        FillTop(item.response().predictions(), &result);
      } else {
        Fail(&result, absl::StatusCodeToString(static_cast<absl::StatusCode>(item.status().code())),
             item.status().message());
      }
    }
  }
}

}  // namespace

std::vector<ClassifyResult> ClassifyFiles(v1::Classifier::StubInterface* stub,
                                          const std::vector<std::string>& files,
                                          const FileClassifierOptions& options,
                                          const std::function<void(size_t finished)>& progress) {
  std::vector<ClassifyResult> results(files.size());
  const size_t unit = options.use_batch_rpc ? std::max(1, options.batch_size) : 1;
  std::atomic<size_t> next{0};
  std::mutex progress_mu;
  size_t finished = 0;

  auto worker = [&] {
    while (true) {
      const size_t begin = next.fetch_add(unit);
      if (begin >= files.size()) return;
      const size_t end = std::min(files.size(), begin + unit);
      // Read this unit's files; unreadable ones fail locally, unsent.
      std::vector<std::string> bytes;
      std::vector<ClassifyResult*> readable;
      for (size_t i = begin; i < end; ++i) {
        results[i].path = files[i];
        absl::StatusOr<std::string> content = ReadFileContents(files[i]);
        if (content.ok()) {
          bytes.push_back(*std::move(content));
          readable.push_back(&results[i]);
        } else {
          Fail(&results[i], "NOT_FOUND", "cannot read file");
        }
      }
      if (!options.use_batch_rpc && !readable.empty()) {
        ClassifyOne(stub, options, std::move(bytes.front()), readable.front());
      } else if (!readable.empty()) {
        ClassifyBatch(stub, options, std::move(bytes), readable);
      }
      if (progress) {
        std::lock_guard<std::mutex> lock(progress_mu);
        finished += end - begin;
        progress(finished);
      }
    }
  };

  std::vector<std::thread> threads;
  const int workers = std::max(1, options.concurrency);
  for (int t = 0; t < workers; ++t) threads.emplace_back(worker);
  for (auto& thread : threads) thread.join();
  return results;
}

}  // namespace matid
