#include "client/plc/plc_station.h"

#include "absl/strings/str_format.h"
#include "common/log.h"
#include "prometheus/family.h"

namespace matid::plc {
namespace {

void Add(prometheus::Counter* counter) {
  if (counter != nullptr) counter->Increment();
}

}  // namespace

PlcStation::Metrics PlcStation::RegisterMetrics(prometheus::Registry* registry) {
  if (registry == nullptr) return {};
  auto& triggers = prometheus::BuildCounter()
                       .Name("matid_plc_triggers_total")
                       .Help("PLC triggers by what became of them")
                       .Register(*registry);
  auto& results = prometheus::BuildCounter()
                      .Name("matid_plc_results_total")
                      .Help("Results written to the PLC registers, by result")
                      .Register(*registry);
  auto& latency = prometheus::BuildHistogram()
                      .Name("matid_plc_trigger_to_result_seconds")
                      .Help("From the PLC's trigger write to its result in the registers")
                      .Register(*registry);
  return {&triggers.Add({{"outcome", "accepted"}}),
          &triggers.Add({{"outcome", "busy"}}),
          &results.Add({{"result", "ok"}}),
          &results.Add({{"result", "ng"}}),
          &results.Add({{"result", "error"}}),
          &latency.Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.02, 0.05, 0.1,
                                                                   0.2, 0.5, 1, 2, 5})};
}

PlcStation::PlcStation(const StationOptions& options, Recipes recipes,
                       std::unique_ptr<Inspector> inspector, Publish publish,
                       prometheus::Registry* registry)
    : options_(options),
      recipes_(std::move(recipes)),
      inspector_(std::move(inspector)),
      publish_(std::move(publish)),
      metrics_(RegisterMetrics(registry)),
      handshake_(absl::Now()) {}

PlcStation::~PlcStation() { Stop(); }

Registers PlcStation::Read(absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  handshake_.Tick(now);
  return handshake_.registers();
}

absl::Status PlcStation::Write(int address, const std::vector<uint16_t>& values) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<Handshake::WriteEffect> effect = handshake_.OnPlcWrite(address, values);
  if (!effect.ok()) return effect.status();
  if (effect->answered_busy) {
    Add(metrics_.busy);
    LogWarning("trigger %d answered busy: inspection in progress", *effect->answered_busy);
  }
  if (effect->started) {
    Add(metrics_.triggers);
    pending_ = *effect->started;
    pending_since_ = absl::Now();
    changed_.notify_all();
  }
  return absl::OkStatus();
}

void PlcStation::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    handshake_.SetReady(true);
  }
  worker_ = std::thread([this] { Work(); });
}

void PlcStation::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    handshake_.SetReady(false);
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void PlcStation::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || pending_.has_value(); });
    if (stopping_) return;
    const Trigger trigger = *pending_;
    const absl::Time triggered_at = pending_since_;
    pending_.reset();
    lock.unlock();
    const Outcome outcome = Handle(trigger, triggered_at);
    lock.lock();
    handshake_.OnResult(trigger.seq, outcome);  // every result register at once
    if (metrics_.latency != nullptr) {
      metrics_.latency->Observe(absl::ToDoubleSeconds(absl::Now() - triggered_at));
    }
  }
}

Outcome PlcStation::Handle(const Trigger& trigger, absl::Time triggered_at) {
  const Recipe* recipe = recipes_.Find(trigger.recipe);
  if (recipe == nullptr) {
    Add(metrics_.errors);
    LogWarning("trigger %d: recipe %d is not configured (--recipes, --accepted_classes)",
               trigger.seq, trigger.recipe);
    return ErrorOutcome(absl::NotFoundError("unknown recipe"));
  }
  absl::StatusOr<Inspection> inspection = inspector_->Inspect();
  if (!inspection.ok()) {
    Add(metrics_.errors);
    LogWarning("trigger %d: %s", trigger.seq, inspection.status().ToString());
    return ErrorOutcome(inspection.status());
  }
  const Outcome outcome =
      DecideOutcome(inspection->response, *recipe, options_.inspection_threshold);
  Add(outcome.state == ResultState::kOk   ? metrics_.ok
      : outcome.state == ResultState::kNg ? metrics_.ng
                                          : metrics_.errors);
  if (outcome.state != ResultState::kError) {
    ResultMessage message = MessageFor(trigger, *inspection, outcome);
    message.latency_ms = absl::ToDoubleMilliseconds(absl::Now() - triggered_at);
    publish_(message);
  }
  return outcome;
}

ResultMessage PlcStation::MessageFor(const Trigger& trigger, const Inspection& inspection,
                                     const Outcome& outcome) {
  const v1::ClassifyResponse& response = inspection.response;
  ResultMessage message;
  message.camera_id = options_.station_id;
  message.frame_seq = ++inspections_;
  message.message_id = MessageId(options_.station_id, options_.boot_id, message.frame_seq);
  message.timestamp = Rfc3339Millis(inspection.captured_at);
  message.model_name = response.model().name();
  message.model_version = response.model().version();
  message.model_variant = response.model().variant();
  message.model_sha256 = response.model().sha256();
  for (const auto& p : response.predictions())
    message.predictions.push_back({p.label(), p.score()});
  message.top_label = message.predictions.front().label;
  message.top_score = message.predictions.front().score;
  message.needs_inspection = outcome.needs_inspection;
  message.trigger = ResultMessage::Trigger{trigger.part_id, trigger.seq, trigger.recipe};
  return message;
}

}  // namespace matid::plc
