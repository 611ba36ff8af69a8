// matid-server-gated: matid-server for tests, built only in tests/ (never
// installed, never in an image). Every model backend sits behind a gate that
// the test opens and closes through a file, so a test reaches "the model is
// busy and the queue is full" by construction instead of by assuming how
// fast the CPU runs the model:
//   --test_hold_file=PATH  while PATH exists, every forward pass waits;
//                          each arrival at the gate appends one byte to
//                          PATH.arrivals (its size counts them).
// Everything else is matid-server's (server_main.h).

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/flags/flag.h"
#include "server/backend/model_backend.h"
#include "server/server_main.h"

ABSL_FLAG(std::string, test_hold_file, "",
          "Test build only: while this file exists, every forward pass waits; each arrival "
          "appends a byte to FILE.arrivals.");

namespace {

class FileGatedBackend final : public matid::ModelBackend {
 public:
  FileGatedBackend(std::unique_ptr<matid::ModelBackend> inner, std::string hold_file)
      : inner_(std::move(inner)), hold_file_(std::move(hold_file)) {}

  const matid::ModelInfo& info() const override { return inner_->info(); }

  absl::StatusOr<std::vector<float>> Infer(absl::Span<const float> input, int batch_size) override {
    if (std::FILE* arrivals = std::fopen((hold_file_ + ".arrivals").c_str(), "a")) {
      std::fputc('.', arrivals);
      std::fclose(arrivals);
    }
    std::error_code error;
    while (std::filesystem::exists(hold_file_, error)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // test-only polling
    }
    return inner_->Infer(input, batch_size);
  }

 private:
  std::unique_ptr<matid::ModelBackend> inner_;
  std::string hold_file_;
};

}  // namespace

int main(int argc, char** argv) {
  return matid::RunServerMain(
      argc, argv,
      [](std::unique_ptr<matid::ModelBackend> backend) -> std::unique_ptr<matid::ModelBackend> {
        const std::string hold_file = absl::GetFlag(FLAGS_test_hold_file);
        if (hold_file.empty()) return backend;
        return std::make_unique<FileGatedBackend>(std::move(backend), hold_file);
      });
}
