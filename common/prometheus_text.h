// Helpers for reading a /metrics endpoint (tests and benchmarks): a blocking HTTP GET over loopback
// and a parser for the Prometheus text exposition format. Stateless.
#ifndef MATID_COMMON_PROMETHEUS_TEXT_H_
#define MATID_COMMON_PROMETHEUS_TEXT_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace matid {

// GET http://127.0.0.1:`port``path`; returns the body of a 200 answer.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

// Samples keyed by series as written, e.g.
// `matid_requests_total{code="OK",rpc="Classify"}`. Label order is as the
// exporter prints it (prometheus-cpp: by name, `le` last). Comment lines skipped.
// INVALID_ARGUMENT on a line that is not `series value`.
absl::StatusOr<std::map<std::string, double>> ParsePrometheusText(const std::string& text);

}  // namespace matid

#endif  // MATID_COMMON_PROMETHEUS_TEXT_H_
