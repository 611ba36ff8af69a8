// matid-inprocess-bench: the ceiling the server is measured against. The
// same model, the same preprocessing and the same LibTorch backend as
// matid-server, called directly in one process (no gRPC, no queue):
//   forward only        images/s of Infer() on ready tensors, per batch size
//   pipeline            decode + preprocess + forward, images/s per batch size
//   single-image latency decode + preprocess + forward of one image, p50
// With --pipelines=N the forward and pipeline loops run on N threads side by
// side, sharing the model, as matid-server --inference_workers=N does; the
// figures are their sum. Every loop runs on a thread of its own (never the
// main thread), as the server's workers do. Prints a table and writes JSON.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/bench_images.h"
#include "bench/cpu_time.h"
#include "common/malloc_tuning.h"
#include "common/program_flags.h"
#include "server/backend/torch_backend.h"
#include "server/core/preprocessor.h"

ABSL_FLAG(std::string, model_dir, "", "Model directory (required).");
ABSL_FLAG(bool, int8, false, "Use model_int8.pt.");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads (as matid-server --threads).");
ABSL_FLAG(int, pipelines, 1,
          "Threads running the loops side by side (as matid-server --inference_workers).");
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

// Runs loop(index) on `count` threads at once and waits for them all.
template <typename Loop>
void RunOnThreads(int count, const Loop& loop) {
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) threads.emplace_back([&loop, i] { loop(i); });
  for (std::thread& thread : threads) thread.join();
}

// One batch size: the forward pass alone, then decode + preprocess + forward,
// on `pipelines` threads side by side for `seconds` each.
struct BatchFigures {
  double forward_images_per_second = 0;
  double pipeline_images_per_second = 0;
  double pipeline_cpu_ms_per_image = 0;
  bool failed = false;  // a preprocessing or inference call failed
};

BatchFigures MeasureBatch(matid::ModelBackend& backend, const matid::Preprocessor& preprocessor,
                          const std::vector<std::string>& images, int batch, int pipelines,
                          double seconds) {
  const size_t tensor = backend.info().input.tensor_size();
  // Each pipeline reports what it did when it ends; a failed call stops the bench.
  std::vector<int64_t> forward_done(pipelines, 0), pipeline_done(pipelines, 0);
  std::atomic<bool> failed{false};
  auto start = Clock::now();
  RunOnThreads(pipelines, [&](int p) {
    std::vector<float> input(batch * tensor, 0.0f);
    int64_t done = 0;
    while (!failed && Since(start) < seconds) {
      if (!backend.Infer(input, batch).ok()) failed = true;
      done += batch;
    }
    forward_done[p] = done;
  });
  const double forward =
      std::accumulate(forward_done.begin(), forward_done.end(), int64_t{0}) / Since(start);
  const double cpu_before = matid::SelfCpuSeconds();
  start = Clock::now();
  RunOnThreads(pipelines, [&](int p) {
    std::vector<float> input(batch * tensor, 0.0f);
    size_t next = p;
    int64_t done = 0;
    while (!failed && Since(start) < seconds) {
      for (int i = 0; i < batch; ++i) {
        const std::string& bytes = images[next++ % images.size()];
        if (!preprocessor.Run(matid::ImageRef::Encoded(bytes), input.data() + i * tensor).ok())
          failed = true;
      }
      if (!backend.Infer(input, batch).ok()) failed = true;
      done += batch;
    }
    pipeline_done[p] = done;
  });
  const int64_t done = std::accumulate(pipeline_done.begin(), pipeline_done.end(), int64_t{0});
  const double pipeline = done / Since(start);
  const double cpu_ms_per_image = 1000 * (matid::SelfCpuSeconds() - cpu_before) / done;
  return {forward, pipeline, cpu_ms_per_image, failed.load()};
}

// Latency of the whole pipeline for one image at a time, median in ms.
double SingleImageP50Ms(matid::ModelBackend& backend, const matid::Preprocessor& preprocessor,
                        const std::vector<std::string>& images, double seconds) {
  const size_t tensor = backend.info().input.tensor_size();
  std::vector<double> latencies;
  RunOnThreads(1, [&](int) {
    std::vector<float> one(tensor);
    size_t next = 0;
    const auto start = Clock::now();
    while (Since(start) < seconds) {
      const auto t = Clock::now();
      (void)preprocessor.Run(matid::ImageRef::Encoded(images[next++ % images.size()]), one.data());
      (void)backend.Infer(one, 1);
      latencies.push_back(1000 * Since(t));
    }
  });
  std::sort(latencies.begin(), latencies.end());
  return latencies[latencies.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  matid::ParseProgramFlags(argc, argv,
                           "The in-process ceiling: decode + preprocess + forward with the "
                           "server's own backend, no gRPC.\n"
                           "Usage: matid-inprocess-bench --model_dir=DIR [--pipelines=N]");
  matid::TuneMallocForLargeBuffers();  // as matid-server does
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
  const int pipelines = std::max(1, absl::GetFlag(FLAGS_pipelines));
  nlohmann::json report = {
      {"model_dir", options.model_dir},
      {"variant", options.int8 ? "int8" : "fp32"},
      {"threads", options.intra_op_threads},
      {"pipelines", pipelines},
      {"input", std::to_string(spec.width) + "x" + std::to_string(spec.height) + "x" +
                    std::to_string(spec.channels())},
      {"batches", nlohmann::json::array()}};
  std::printf("%-6s %16s %16s %18s\n", "batch", "forward img/s", "pipeline img/s",
              "pipeline CPU ms/img");
  double best_pipeline = 0;
  for (int batch : batch_sizes) {
    const BatchFigures figures =
        MeasureBatch(**backend, preprocessor, images, batch, pipelines, seconds);
    const bool failed = figures.failed;
    const double forward = figures.forward_images_per_second;
    const double pipeline = figures.pipeline_images_per_second;
    const double cpu_ms_per_image = figures.pipeline_cpu_ms_per_image;
    if (failed) {
      std::fprintf(stderr, "matid-inprocess-bench: preprocessing or inference failed\n");
      return 1;
    }
    best_pipeline = std::max(best_pipeline, pipeline);
    std::printf("%-6d %16.1f %16.1f %18.3f\n", batch, forward, pipeline, cpu_ms_per_image);
    report["batches"].push_back({{"batch", batch},
                                 {"forward_images_per_second", forward},
                                 {"pipeline_images_per_second", pipeline},
                                 {"pipeline_cpu_ms_per_image", cpu_ms_per_image}});
  }
  const double p50 = SingleImageP50Ms(**backend, preprocessor, images, seconds);
  std::printf("single-image pipeline latency p50 %.3f ms; best pipeline %.1f img/s\n", p50,
              best_pipeline);
  report["single_image_p50_ms"] = p50;
  report["best_pipeline_images_per_second"] = best_pipeline;
  if (!absl::GetFlag(FLAGS_json).empty())
    std::ofstream(absl::GetFlag(FLAGS_json)) << report.dump(1);
  return 0;
}
