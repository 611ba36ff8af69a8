// matid-classify: classifies image files or directories against a matid
// server and prints a table, CSV or JSON lines. Exit code 0 when every image
// was classified, 1 when any failed (each with its reason), 2 on usage or
// connection errors.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "client/classify/classify_result.h"
#include "client/classify/file_classifier.h"
#include "common/channel_credentials.h"
#include "common/client_tls_flags.h"
#include "common/image_files.h"
#include "common/mutex_deadlock_detection.h"
#include "common/program_flags.h"

ABSL_FLAG(std::string, server, "localhost:50051",
          "matid-server address: host:port, dns:///name:port (every address it resolves to) or "
          "ipv4:a:port,b:port; calls spread round-robin over the servers that are up.");
ABSL_FLAG(std::string, mode, "classify",
          "RPC to use: classify (one image per call) or batch (BatchClassify).");
ABSL_FLAG(int, batch_size, 16, "Images per BatchClassify call (--mode=batch).");
ABSL_FLAG(int, concurrency, 4, "Calls in flight at once.");
ABSL_FLAG(int, top_k, 3, "Predictions per image.");
ABSL_FLAG(std::string, format, "table", "Output format: table, csv or jsonl.");
ABSL_FLAG(std::string, output, "-", "Output file; - for standard output.");
ABSL_FLAG(double, timeout_seconds, 30, "Deadline of each call.");
ABSL_FLAG(double, connect_timeout_seconds, 10, "How long to wait for the server to be reachable.");
ABSL_FLAG(bool, progress, false, "Print progress to standard error.");

namespace {

// Usage errors exit with 2, as a missing server does.
constexpr int kUsageError = 2;

// The files named on the command line, or an error that says why there are none.
absl::StatusOr<std::vector<std::string>> FilesToClassify(const std::vector<char*>& positional) {
  std::vector<std::string> paths(positional.begin() + 1, positional.end());
  if (paths.empty()) {
    return absl::InvalidArgumentError("name at least one image file or directory (see --help)");
  }
  auto files = matid::FindImageFiles(paths);
  if (files.ok() && files->empty()) return absl::NotFoundError("no image files found");
  return files;
}

// A channel to the server(s) that is connected, or UNAVAILABLE in time.
absl::StatusOr<std::shared_ptr<grpc::Channel>> ConnectToServer() {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(64 << 20);
  arguments.SetMaxSendMessageSize(64 << 20);
  auto credentials = matid::ChannelCredentialsFromFlags();
  if (!credentials.ok()) return credentials.status();
  auto channel = matid::CreateServerChannel(absl::GetFlag(FLAGS_server), *credentials, arguments);
  const auto connect_by =
      std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(
                                             absl::GetFlag(FLAGS_connect_timeout_seconds) * 1000));
  if (!channel->WaitForConnected(connect_by)) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach server at ", absl::GetFlag(FLAGS_server)));
  }
  return channel;
}

absl::StatusOr<matid::FileClassifierOptions> ClassifierOptionsFromFlags() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "classify" && mode != "batch") {
    return absl::InvalidArgumentError("--mode must be classify or batch");
  }
  matid::FileClassifierOptions options;
  options.use_batch_rpc = mode == "batch";
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.top_k = absl::GetFlag(FLAGS_top_k);
  options.timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout_seconds));
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> positional = matid::ParseProgramFlags(
      argc, argv,
      "Classifies images with a matid server.\n"
      "Usage: matid-classify [--server=host:port] [--mode=classify|batch] "
      "[--format=table|csv|jsonl] PATH...  (files, or directories searched recursively)");
  matid::TurnOffMutexDeadlockDetection();
  auto files = FilesToClassify(positional);
  if (!files.ok()) return matid::FailWith(files.status(), kUsageError);
  auto format = matid::ParseOutputFormat(absl::GetFlag(FLAGS_format));
  if (!format.ok()) return matid::FailWith(format.status(), kUsageError);
  auto options = ClassifierOptionsFromFlags();
  if (!options.ok()) return matid::FailWith(options.status(), kUsageError);
  auto channel = ConnectToServer();
  if (!channel.ok()) return matid::FailWith(channel.status(), kUsageError);
  auto stub = matid::v1::Classifier::NewStub(*channel);

  const bool show_progress = absl::GetFlag(FLAGS_progress);
  const size_t total = files->size();
  const auto start = std::chrono::steady_clock::now();
  std::vector<matid::ClassifyResult> results =
      matid::ClassifyFiles(stub.get(), *files, *options, [&](size_t finished) {
        if (show_progress && (finished % 500 == 0 || finished == total)) {
          std::fprintf(stderr, "\rmatid-classify: %zu/%zu images", finished, total);
          if (finished == total) std::fprintf(stderr, "\n");
        }
      });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const std::string output = absl::GetFlag(FLAGS_output);
  if (output == "-") {
    matid::WriteResults(results, *format, std::cout);
  } else {
    std::ofstream file(output);
    if (!file) {
      return matid::FailWith(absl::PermissionDeniedError(absl::StrCat("cannot write ", output)),
                             kUsageError);
    }
    matid::WriteResults(results, *format, file);
  }

  // The rows (stdout, buffered) end before the summary (stderr) starts,
  // also when both go to one terminal or file.
  std::cout.flush();
  size_t failed = 0;
  for (const auto& result : results) failed += result.ok() ? 0 : 1;
  std::fprintf(stderr,
               "matid-classify: %zu images, %zu classified, %zu failed in %.2fs (%.1f images/s)\n",
               results.size(), results.size() - failed, failed, seconds,
               results.size() / std::max(seconds, 1e-9));
  return failed == 0 ? 0 : 1;
}
