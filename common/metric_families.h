// Prometheus metric families of one series each (no labels), as the
// programs register them at start: AddCounter/AddGauge return the series.
// Register from one thread at start; the returned handles are thread-safe
// (prometheus-cpp).
#ifndef MATID_COMMON_METRIC_FAMILIES_H_
#define MATID_COMMON_METRIC_FAMILIES_H_

#include <string>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace matid {

inline prometheus::Counter* AddCounter(prometheus::Registry& registry, const std::string& name,
                                       const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

inline prometheus::Gauge* AddGauge(prometheus::Registry& registry, const std::string& name,
                                   const std::string& help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace matid

#endif  // MATID_COMMON_METRIC_FAMILIES_H_
