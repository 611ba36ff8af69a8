// matid-inprocess-bench: the ceiling the server is measured against. The
// same model, the same preprocessing and the same LibTorch backend as
// matid-server, called directly in one process (no gRPC, no queue):
//   forward only        images/s of Infer() on ready tensors, per batch size
//   pipeline            decode + preprocess + forward, images/s per batch size
//   single-image latency decode + preprocess + forward of one image, p50
// Prints a table and writes JSON.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/bench_images.h"
#include "bench/cpu_time.h"
#include "server/malloc_tuning.h"
#include "server/preprocessor.h"
#include "server/torch_backend.h"

ABSL_FLAG(std::string, model_dir, "", "Model directory (required).");
ABSL_FLAG(bool, int8, false, "Use model_int8.pt.");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads (as matid-server --threads).");
ABSL_FLAG(std::string, images, "", "Folder of images (encoded).");
ABSL_FLAG(std::string, synthetic, "",
          "WxHxC random images when --images is empty (default: the model's input size).");
ABSL_FLAG(std::string, batch_sizes, "1,2,4,8,16", "Batch sizes to measure.");
ABSL_FLAG(double, seconds, 4, "Time per measurement.");
ABSL_FLAG(std::string, json, "", "Write the results here as JSON.");

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<std::string> LoadImages(const matid::InputSpec& spec) {
  if (!absl::GetFlag(FLAGS_images).empty())
    return matid::LoadEncodedImages(absl::GetFlag(FLAGS_images));
  return matid::SyntheticEncodedImages(absl::GetFlag(FLAGS_synthetic), 64, spec.width, spec.height,
                                       spec.channels());
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  matid::TuneMallocForInference();  // as matid-server does
  matid::TorchBackendOptions options;
  options.model_dir = absl::GetFlag(FLAGS_model_dir);
  options.int8 = absl::GetFlag(FLAGS_int8);
  options.intra_op_threads = absl::GetFlag(FLAGS_threads);
  std::vector<int> batch_sizes;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_batch_sizes), ',')) {
    int b;
    if (absl::SimpleAtoi(part, &b) && b > 0) batch_sizes.push_back(b);
  }
  options.warmup_batch_size = *std::max_element(batch_sizes.begin(), batch_sizes.end());
  auto backend = matid::CreateTorchBackend(options);
  if (!backend.ok()) {
    std::fprintf(stderr, "matid-inprocess-bench: %s\n", backend.status().ToString().c_str());
    return 1;
  }
  const matid::InputSpec& spec = (*backend)->info().input;
  const matid::Preprocessor preprocessor(spec, {});
  const std::vector<std::string> images = LoadImages(spec);
  if (images.empty()) {
    std::fprintf(stderr, "matid-inprocess-bench: no images\n");
    return 1;
  }
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const size_t tensor = spec.tensor_size();
  nlohmann::json report = {
      {"model_dir", options.model_dir},
      {"variant", options.int8 ? "int8" : "fp32"},
      {"threads", options.intra_op_threads},
      {"input", std::to_string(spec.width) + "x" + std::to_string(spec.height) + "x" +
                    std::to_string(spec.channels())},
      {"batches", nlohmann::json::array()}};
  std::printf("%-6s %16s %16s %18s\n", "batch", "forward img/s", "pipeline img/s",
              "pipeline CPU ms/img");
  double best_pipeline = 0;
  for (int batch : batch_sizes) {
    std::vector<float> input(batch * tensor, 0.0f);
    int64_t done = 0;
    auto start = Clock::now();
    while (Since(start) < seconds) {
      if (!(*backend)->Infer(input, batch).ok()) return 1;
      done += batch;
    }
    const double forward = done / Since(start);
    done = 0;
    size_t next = 0;
    const double cpu_before = matid::SelfCpuSeconds();
    start = Clock::now();
    while (Since(start) < seconds) {
      for (int i = 0; i < batch; ++i) {
        const std::string& bytes = images[next++ % images.size()];
        if (!preprocessor.Run(matid::ImageRef::Encoded(bytes), input.data() + i * tensor).ok()) {
          return 1;
        }
      }
      if (!(*backend)->Infer(input, batch).ok()) return 1;
      done += batch;
    }
    const double pipeline = done / Since(start);
    const double cpu_ms_per_image = 1000 * (matid::SelfCpuSeconds() - cpu_before) / done;
    best_pipeline = std::max(best_pipeline, pipeline);
    std::printf("%-6d %16.1f %16.1f %18.3f\n", batch, forward, pipeline, cpu_ms_per_image);
    report["batches"].push_back({{"batch", batch},
                                 {"forward_images_per_second", forward},
                                 {"pipeline_images_per_second", pipeline},
                                 {"pipeline_cpu_ms_per_image", cpu_ms_per_image}});
  }
  // Single-image latency of the whole pipeline.
  std::vector<double> latencies;
  std::vector<float> one(tensor);
  size_t next = 0;
  const auto start = Clock::now();
  while (Since(start) < seconds) {
    const auto t = Clock::now();
    (void)preprocessor.Run(matid::ImageRef::Encoded(images[next++ % images.size()]), one.data());
    (void)(*backend)->Infer(one, 1);
    latencies.push_back(1000 * Since(t));
  }
  std::sort(latencies.begin(), latencies.end());
  const double p50 = latencies[latencies.size() / 2];
  std::printf("single-image pipeline latency p50 %.3f ms; best pipeline %.1f img/s\n", p50,
              best_pipeline);
  report["single_image_p50_ms"] = p50;
  report["best_pipeline_images_per_second"] = best_pipeline;
  if (!absl::GetFlag(FLAGS_json).empty())
    std::ofstream(absl::GetFlag(FLAGS_json)) << report.dump(1);
  return 0;
}
