// Collects per-request latencies and outcomes for one benchmark step and
// summarises them (throughput, percentiles, errors by status code).
// Thread-safe: Record() from many threads; Summary() after they stop.
#ifndef MATID_BENCH_LATENCY_RECORDER_H_
#define MATID_BENCH_LATENCY_RECORDER_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace matid {

struct StepSummary {
  int64_t requests = 0;
  int64_t images = 0;  // images answered OK
  double seconds = 0;
  double images_per_second = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0, mean_ms = 0;
  std::map<std::string, int64_t> errors;  // status code name -> count
};

class LatencyRecorder {
 public:
  void Record(double latency_ms, int images, const std::string& code) {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_;
    if (code == "OK") {
      latencies_ms_.push_back(latency_ms);
      images_ += images;
    } else {
      ++errors_[code];
    }
  }

  StepSummary Summary(double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    StepSummary s;
    s.requests = requests_;
    s.images = images_;
    s.seconds = seconds;
    s.images_per_second = seconds > 0 ? images_ / seconds : 0;
    s.errors = errors_;
    if (!latencies_ms_.empty()) {
      std::sort(latencies_ms_.begin(), latencies_ms_.end());
      auto at = [&](double q) {
        const size_t index = static_cast<size_t>(q * (latencies_ms_.size() - 1) + 0.5);
        return latencies_ms_[std::min(index, latencies_ms_.size() - 1)];
      };
      s.p50_ms = at(0.50);
      s.p90_ms = at(0.90);
      s.p99_ms = at(0.99);
      s.max_ms = latencies_ms_.back();
      double sum = 0;
      for (double v : latencies_ms_) sum += v;
      s.mean_ms = sum / latencies_ms_.size();
    }
    return s;
  }

 private:
  std::mutex mu_;
  std::vector<double> latencies_ms_;       // guarded by mu_
  int64_t requests_ = 0;                   // guarded by mu_
  int64_t images_ = 0;                     // guarded by mu_
  std::map<std::string, int64_t> errors_;  // guarded by mu_
};

}  // namespace matid

#endif  // MATID_BENCH_LATENCY_RECORDER_H_
