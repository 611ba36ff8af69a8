// One inspection station behind a PLC: the handshake's registers for the
// Modbus server (as its RegisterBank), and a worker thread that inspects
// each accepted trigger, decides OK/NG by the trigger's recipe, writes the
// result to the registers in one step and hands a result message (with the
// trigger's part id) to a publish function, like the camera's.
// Thread-safety: Read and Write from the Modbus thread, Start/Stop from the
// owner; the handshake is guarded by one mutex.
#ifndef MATID_CLIENT_PLC_PLC_STATION_H_
#define MATID_CLIENT_PLC_PLC_STATION_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "client/plc/handshake.h"
#include "client/plc/inspector.h"
#include "client/plc/modbus_server.h"
#include "client/plc/recipes.h"
#include "common/result_message.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace matid::plc {

struct StationOptions {
  std::string station_id = "plc-station-1";  // camera_id of its result messages
  std::string boot_id;
  double inspection_threshold = 0.6;
};

class PlcStation : public RegisterBank {
 public:
  using Publish = std::function<void(const ResultMessage& message)>;

  // `registry` may be nullptr.
  PlcStation(const StationOptions& options, Recipes recipes, std::unique_ptr<Inspector> inspector,
             Publish publish, prometheus::Registry* registry);
  ~PlcStation() override;

  Registers Read(absl::Time now) override;
  absl::Status Write(int address, const std::vector<uint16_t>& values) override;

  // Starts the worker; the box reads ready from then on.
  void Start();
  // Ends after the inspection in progress.
  void Stop();

 private:
  struct Metrics {
    prometheus::Counter* triggers = nullptr;
    prometheus::Counter* busy = nullptr;
    prometheus::Counter* ok = nullptr;
    prometheus::Counter* ng = nullptr;
    prometheus::Counter* errors = nullptr;
    prometheus::Histogram* latency = nullptr;
  };
  static Metrics RegisterMetrics(prometheus::Registry* registry);

  void Work();
  // Inspects `trigger` and returns its outcome, publishing the result message.
  Outcome Handle(const Trigger& trigger, absl::Time triggered_at);
  ResultMessage MessageFor(const Trigger& trigger, const Inspection& inspection,
                           const Outcome& outcome);

  const StationOptions options_;
  const Recipes recipes_;
  const std::unique_ptr<Inspector> inspector_;
  const Publish publish_;
  const Metrics metrics_;
  uint64_t inspections_ = 0;  // worker thread only

  std::mutex mu_;
  std::condition_variable changed_;
  Handshake handshake_;             // guarded by mu_
  std::optional<Trigger> pending_;  // guarded by mu_
  absl::Time pending_since_;        // guarded by mu_
  bool stopping_ = false;           // guarded by mu_
  std::thread worker_;
};

}  // namespace matid::plc

#endif  // MATID_CLIENT_PLC_PLC_STATION_H_
