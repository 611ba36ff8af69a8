// matid-bench: a load generator for any matid server. Closed loop with a
// concurrency sweep, or open loop at a fixed rate with Poisson arrivals;
// Classify, BatchClassify, ClassifyStream, or the Open Inference Protocol's
// ModelInfer (one image, raw BYTES as Triton's clients send it); images from a folder or
// synthetic. Per step: throughput, latency percentiles, errors by code, and
// the server's own queue/inference split read from its /metrics. Prints a
// table and writes JSON. Every step is bounded in time and requests.
#include <grpcpp/create_channel.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/bench_images.h"
#include "bench/cpu_time.h"
#include "bench/latency_recorder.h"
#include "common/image_files.h"
#include "common/mutex_deadlock_detection.h"
#include "common/program_flags.h"
#include "common/prometheus_text.h"
#include "inference/grpc_service.grpc.pb.h"
#include "matid/v1/matid.grpc.pb.h"

ABSL_FLAG(std::string, server, "localhost:50051", "matid server address.");
ABSL_FLAG(int, metrics_port, 8080, "The server's /metrics port on 127.0.0.1 (-1: do not read).");
ABSL_FLAG(std::string, mode, "classify",
          "classify, batch, stream (matid.v1) or infer (Open Inference Protocol ModelInfer).");
ABSL_FLAG(std::string, concurrency, "1,2,4,8,16,32",
          "Closed-loop sweep: clients in flight per step.");
ABSL_FLAG(double, rate, 0,
          "Open loop: requests per second with Poisson arrivals (replaces the sweep).");
ABSL_FLAG(double, step_seconds, 8, "Length of each step.");
ABSL_FLAG(double, warmup_seconds, 1, "Unmeasured load before each step.");
ABSL_FLAG(int64_t, max_requests, 200000, "Upper bound of requests per step.");
ABSL_FLAG(int, batch_size, 8, "Images per BatchClassify request (--mode=batch).");
ABSL_FLAG(std::string, images, "", "Folder of images to send (encoded bytes, round robin).");
ABSL_FLAG(std::string, synthetic, "28x28x1", "WxHxC random images as PNG when --images is empty.");
ABSL_FLAG(int, synthetic_count, 64, "How many synthetic images.");
ABSL_FLAG(std::string, label, "", "Free text stored in the JSON (model, variant...).");
ABSL_FLAG(std::string, json, "", "Write the results here as JSON.");
ABSL_FLAG(int, server_pid, 0, "The server's process id, to report its CPU time per image.");
ABSL_FLAG(std::string, client, "callback",
          "Closed-loop Classify clients: 'callback' (each virtual client issues its next call "
          "from the last one's completion; no thread per client, the least client CPU) or "
          "'threads' (one blocking thread per client). --mode=infer always uses callback.");

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> LoadImages() {
  const std::string folder = absl::GetFlag(FLAGS_images);
  if (!folder.empty()) return matid::LoadEncodedImages(folder);
  return matid::SyntheticEncodedImages(absl::GetFlag(FLAGS_synthetic),
                                       absl::GetFlag(FLAGS_synthetic_count));
}

std::string CodeName(const grpc::Status& status) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
}

struct ServerSplit {
  double queue_ms = 0, inference_ms = 0, preprocess_ms = 0, batch_size = 0;
  // CPU time per image answered: the server's (needs --server_pid) and this
  // load generator's own, which shares the machine when both run on it.
  double server_cpu_ms_per_image = 0, client_cpu_ms_per_image = 0;
};

std::map<std::string, double> Scrape(int port) {
  if (port < 0) return {};
  auto body = matid::HttpGet(port, "/metrics");
  if (!body.ok()) return {};
  auto samples = matid::ParsePrometheusText(*body);
  return samples.ok() ? *samples : std::map<std::string, double>{};
}

ServerSplit Split(const std::map<std::string, double>& before,
                  const std::map<std::string, double>& after) {
  auto delta = [&](const std::string& name) {
    auto a = after.find(name);
    auto b = before.find(name);
    return (a == after.end() ? 0 : a->second) - (b == before.end() ? 0 : b->second);
  };
  auto mean_ms = [&](const std::string& metric) {
    const double count = delta(metric + "_count");
    return count > 0 ? 1000 * delta(metric + "_sum") / count : 0;
  };
  ServerSplit split;
  split.queue_ms = mean_ms("matid_queue_wait_seconds");
  split.inference_ms = mean_ms("matid_inference_duration_seconds");
  split.preprocess_ms = mean_ms("matid_preprocess_duration_seconds");
  const double batches = delta("matid_batch_size_count");
  split.batch_size = batches > 0 ? delta("matid_batch_size_sum") / batches : 0;
  return split;
}

class Load {
 public:
  Load(std::shared_ptr<grpc::Channel> channel, std::vector<std::string> images)
      : stub_(matid::v1::Classifier::NewStub(channel)),
        infer_stub_(inference::GRPCInferenceService::NewStub(channel)),
        infer_(absl::GetFlag(FLAGS_mode) == "infer"),
        images_(std::move(images)) {}

  // One closed-loop client: requests back to back until `until` or budget.
  void ClosedLoopClient(Clock::time_point until, std::atomic<int64_t>* budget,
                        matid::LatencyRecorder* recorder, int client) {
    const std::string mode = absl::GetFlag(FLAGS_mode);
    size_t next = client;
    if (mode == "stream") {
      grpc::ClientContext context;
      auto stream = stub_->ClassifyStream(&context);
      uint64_t seq = 0;
      while (Clock::now() < until && budget->fetch_sub(1) > 0) {
        matid::v1::Frame frame;
        frame.set_seq(seq++);
        frame.mutable_image()->set_encoded(images_[next++ % images_.size()]);
        const auto start = Clock::now();
        matid::v1::FrameResult result;
        if (!stream->Write(frame) || !stream->Read(&result)) {
          recorder->Record(0, 0, "STREAM_BROKEN");
          break;
        }
        const std::string code =
            result.status().code() == 0
                ? "OK"
                : absl::StatusCodeToString(static_cast<absl::StatusCode>(result.status().code()));
        recorder->Record(Ms(start), 1, code);
      }
      stream->WritesDone();
      stream->Finish();
      return;
    }
    while (Clock::now() < until && budget->fetch_sub(1) > 0) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      const auto start = Clock::now();
      if (mode == "batch") {
        matid::v1::BatchClassifyRequest request;
        for (int i = 0; i < absl::GetFlag(FLAGS_batch_size); ++i) {
          request.add_items()->mutable_image()->set_encoded(images_[next++ % images_.size()]);
        }
        matid::v1::BatchClassifyResponse response;
        grpc::Status status = stub_->BatchClassify(&context, request, &response);
        int ok = 0;
        for (const auto& r : response.results()) ok += r.status().code() == 0;
        recorder->Record(Ms(start), ok, status.ok() ? "OK" : CodeName(status));
      } else {
        matid::v1::ClassifyRequest request;
        request.mutable_image()->set_encoded(images_[next++ % images_.size()]);
        request.set_top_k(1);
        matid::v1::ClassifyResponse response;
        grpc::Status status = stub_->Classify(&context, request, &response);
        recorder->Record(Ms(start), 1, status.ok() ? "OK" : CodeName(status));
      }
    }
  }

  // One Classify (or ModelInfer) on the callback API and when it was sent.
  struct Call {
    grpc::ClientContext context;
    matid::v1::ClassifyRequest request;
    matid::v1::ClassifyResponse response;
    inference::ModelInferRequest infer_request;
    inference::ModelInferResponse infer_response;
    Clock::time_point start;
  };

  // Sends one image on `call` (set up but for its request) and calls
  // `done` with the status.
  void Send(Call* call, const std::string& image, std::function<void(grpc::Status)> done) {
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    call->start = Clock::now();
    if (!infer_) {
      call->request.mutable_image()->set_encoded(image);
      call->request.set_top_k(1);
      stub_->async()->Classify(&call->context, &call->request, &call->response, std::move(done));
      return;
    }
    // As Triton's clients send BYTES: raw, each element after its length.
    auto* input = call->infer_request.add_inputs();
    input->set_name("IMAGE");
    input->set_datatype("BYTES");
    input->add_shape(1);
    std::string* raw = call->infer_request.add_raw_input_contents();
    const uint32_t n = image.size();
    const char length[4] = {static_cast<char>(n), static_cast<char>(n >> 8),
                            static_cast<char>(n >> 16), static_cast<char>(n >> 24)};
    raw->append(length, 4).append(image);
    infer_stub_->async()->ModelInfer(&call->context, &call->infer_request, &call->infer_response,
                                     std::move(done));
  }

  // Closed loop on the callback API: `concurrency` virtual clients, each
  // issuing its next Classify from the completion of its last one, so no
  // client thread is parked per call and the load generator takes as little
  // of the shared CPU as it can.
  void ClosedLoopCallback(int concurrency, Clock::time_point until, std::atomic<int64_t>* budget,
                          matid::LatencyRecorder* recorder) {
    struct Client {
      std::unique_ptr<Call> call;  // the one in flight; replaced by the next
      size_t next_image = 0;
    };
    std::vector<Client> clients(concurrency);
    std::mutex mu;
    std::condition_variable all_done;
    int running = concurrency;  // guarded by mu
    std::function<void(Client*)> issue = [&](Client* client) {
      if (Clock::now() >= until || budget->fetch_sub(1) <= 0) {
        std::lock_guard<std::mutex> lock(mu);
        if (--running == 0) all_done.notify_all();
        return;
      }
      // Safe inside the previous call's completion: gRPC is done with it.
      client->call = std::make_unique<Call>();
      Call* call = client->call.get();
      Send(call, images_[client->next_image++ % images_.size()],
           [&, client, call](grpc::Status status) {
             recorder->Record(Ms(call->start), 1, status.ok() ? "OK" : CodeName(status));
             issue(client);
           });
    };
    for (int c = 0; c < concurrency; ++c) {
      clients[c].next_image = c;
      issue(&clients[c]);
    }
    std::unique_lock<std::mutex> lock(mu);
    all_done.wait(lock, [&] { return running == 0; });
  }

  // Open loop: Poisson arrivals at `rate`, callback API, bounded outstanding.
  void OpenLoop(double rate, Clock::time_point until, int64_t budget,
                matid::LatencyRecorder* recorder) {
    std::mt19937_64 random(7);
    std::exponential_distribution<double> gap(rate);
    std::atomic<int> outstanding{0};
    auto next_arrival = Clock::now();
    size_t next = 0;
    for (int64_t sent = 0; sent < budget; ++sent) {
      next_arrival +=
          std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(random)));
      if (next_arrival >= until) break;
      std::this_thread::sleep_until(next_arrival);
      if (outstanding.load() >= 2000) {  // the server cannot keep up: count, do not pile up
        recorder->Record(0, 0, "CLIENT_BACKLOG_FULL");
        continue;
      }
      auto* call = new Call();  // deleted by its completion callback
      ++outstanding;
      Send(call, images_[next++ % images_.size()],
           [call, recorder, &outstanding](grpc::Status status) {
             recorder->Record(Ms(call->start), 1, status.ok() ? "OK" : CodeName(status));
             delete call;
             --outstanding;
           });
    }
    const auto give_up = Clock::now() + std::chrono::seconds(35);
    while (outstanding.load() > 0 && Clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

 private:
  static double Ms(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  }

  std::unique_ptr<matid::v1::Classifier::Stub> stub_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> infer_stub_;
  const bool infer_;  // --mode=infer
  const std::vector<std::string> images_;
};

matid::StepSummary RunStep(Load& load, int concurrency, double rate, double seconds,
                           ServerSplit* split) {
  const int metrics_port = absl::GetFlag(FLAGS_metrics_port);
  auto run = [&](double duration, matid::LatencyRecorder* recorder) {
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(duration));
    if (rate > 0) {
      load.OpenLoop(rate, until, absl::GetFlag(FLAGS_max_requests), recorder);
      return;
    }
    std::atomic<int64_t> budget{absl::GetFlag(FLAGS_max_requests)};
    const std::string mode = absl::GetFlag(FLAGS_mode);
    if (mode == "infer" || (mode == "classify" && absl::GetFlag(FLAGS_client) == "callback")) {
      load.ClosedLoopCallback(concurrency, until, &budget, recorder);
      return;
    }
    std::vector<std::thread> clients;
    for (int c = 0; c < concurrency; ++c) {
      clients.emplace_back([&, c] { load.ClosedLoopClient(until, &budget, recorder, c); });
    }
    for (auto& t : clients) t.join();
  };
  matid::LatencyRecorder warmup;
  run(absl::GetFlag(FLAGS_warmup_seconds), &warmup);
  const auto before = Scrape(metrics_port);
  const int server_pid = absl::GetFlag(FLAGS_server_pid);
  const double server_cpu_before = matid::ProcessCpuSeconds(server_pid);
  const double client_cpu_before = matid::SelfCpuSeconds();
  matid::LatencyRecorder recorder;
  const auto start = Clock::now();
  run(seconds, &recorder);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double client_cpu = matid::SelfCpuSeconds() - client_cpu_before;
  const double server_cpu = matid::ProcessCpuSeconds(server_pid) - server_cpu_before;
  *split = Split(before, Scrape(metrics_port));
  matid::StepSummary summary = recorder.Summary(elapsed);
  const double images = summary.images_per_second * elapsed;
  if (images > 0) {
    split->client_cpu_ms_per_image = 1000 * client_cpu / images;
    if (server_pid > 0) split->server_cpu_ms_per_image = 1000 * server_cpu / images;
  }
  return summary;
}

}  // namespace

int main(int argc, char** argv) {
  matid::ParseProgramFlags(
      argc, argv,
      "Load generator for matid servers.\n"
      "Usage: matid-bench --server=host:port [--mode=classify|batch|stream|infer] "
      "[--concurrency=1,2,4,8,16,32 | --rate=RPS] [--images=DIR]");
  matid::TurnOffMutexDeadlockDetection();
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "classify" && mode != "batch" && mode != "stream" && mode != "infer") {
    std::fprintf(stderr, "matid-bench: --mode=%s: expected classify, batch, stream or infer\n",
                 mode.c_str());
    return 2;
  }
  std::vector<std::string> images = LoadImages();
  if (images.empty()) {
    std::fprintf(stderr, "matid-bench: no images (check --images)\n");
    return 2;
  }
  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    std::fprintf(stderr, "matid-bench: cannot reach %s\n", absl::GetFlag(FLAGS_server).c_str());
    return 2;
  }
  Load load(channel, std::move(images));

  std::vector<int> sweep;
  const double rate = absl::GetFlag(FLAGS_rate);
  if (rate > 0) {
    sweep.push_back(0);
  } else {
    for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
      int c;
      if (absl::SimpleAtoi(part, &c) && c > 0) sweep.push_back(c);
    }
  }
  nlohmann::json report = {
      {"server", absl::GetFlag(FLAGS_server)},         {"mode", absl::GetFlag(FLAGS_mode)},
      {"label", absl::GetFlag(FLAGS_label)},           {"client", absl::GetFlag(FLAGS_client)},
      {"batch_size", absl::GetFlag(FLAGS_batch_size)}, {"steps", nlohmann::json::array()}};
  std::printf("%-6s %-9s %9s %9s %9s %9s %9s %9s %8s %8s %6s %8s %8s  %s\n",
              rate > 0 ? "rate" : "conc", "mode", "images/s", "p50 ms", "p90 ms", "p99 ms",
              "max ms", "queue ms", "infer ms", "prep ms", "batch", "srvCPUms", "cliCPUms",
              "errors");
  for (int concurrency : sweep) {
    ServerSplit split;
    matid::StepSummary s =
        RunStep(load, concurrency, rate, absl::GetFlag(FLAGS_step_seconds), &split);
    std::string errors;
    for (const auto& [code, n] : s.errors) errors += code + ":" + std::to_string(n) + " ";
    std::printf("%-6g %-9s %9.1f %9.2f %9.2f %9.2f %9.2f %9.3f %8.3f %8.3f %6.2f %8.3f %8.3f  %s\n",
                rate > 0 ? rate : concurrency, absl::GetFlag(FLAGS_mode).c_str(),
                s.images_per_second, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms, split.queue_ms,
                split.inference_ms, split.preprocess_ms, split.batch_size,
                split.server_cpu_ms_per_image, split.client_cpu_ms_per_image, errors.c_str());
    std::fflush(stdout);
    report["steps"].push_back({{"concurrency", concurrency},
                               {"rate", rate},
                               {"requests", s.requests},
                               {"images", s.images},
                               {"seconds", s.seconds},
                               {"images_per_second", s.images_per_second},
                               {"p50_ms", s.p50_ms},
                               {"p90_ms", s.p90_ms},
                               {"p99_ms", s.p99_ms},
                               {"max_ms", s.max_ms},
                               {"mean_ms", s.mean_ms},
                               {"errors", s.errors},
                               {"server_queue_ms", split.queue_ms},
                               {"server_inference_ms_per_batch", split.inference_ms},
                               {"server_preprocess_ms", split.preprocess_ms},
                               {"server_mean_batch_size", split.batch_size},
                               {"server_cpu_ms_per_image", split.server_cpu_ms_per_image},
                               {"client_cpu_ms_per_image", split.client_cpu_ms_per_image}});
  }
  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) std::ofstream(json_path) << report.dump(1) << "\n";
  return 0;
}
