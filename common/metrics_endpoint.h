// A Prometheus registry with its /metrics HTTP endpoint (prometheus-cpp),
// for the client programs (camera, bridge). Build metric families on
// registry() once at start; prometheus-cpp handles are thread-safe.
#ifndef MATID_COMMON_METRICS_ENDPOINT_H_
#define MATID_COMMON_METRICS_ENDPOINT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

namespace matid {

class MetricsEndpoint {
 public:
  // Serves /metrics on bind_address:port (port 0: any free port); a negative
  // port serves nothing (the registry still works).
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Create(const std::string& bind_address,
                                                                 int port);

  prometheus::Registry& registry() { return *registry_; }
  // Port /metrics listens on, or -1.
  int port() const { return port_; }

 private:
  MetricsEndpoint() = default;

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  std::unique_ptr<prometheus::Exposer> exposer_;  // or nullptr when not serving
  int port_ = -1;
};

// Histogram buckets in seconds from 100 us to 10 s.
std::vector<double> LatencyBucketsSeconds();

}  // namespace matid

#endif  // MATID_COMMON_METRICS_ENDPOINT_H_
