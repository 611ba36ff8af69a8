#include "client/plc/handshake.h"

#include "absl/strings/str_format.h"

namespace matid::plc {

Handshake::Handshake(absl::Time now) : last_beat_(now) {
  Set(kRegMapVersion, kMapVersion);
  Set(kRegStatus, static_cast<uint16_t>(BoxStatus::kStarting));
  ClearResult();
}

void Handshake::ClearResult() {
  Set(kRegResultState, static_cast<uint16_t>(ResultState::kNone));
  Set(kRegClassIndex, kNoClass);
  Set(kRegScoreX1000, 0);
  Set(kRegNeedsInspection, 0);
  Set(kRegErrorCode, static_cast<uint16_t>(ErrorCode::kNone));
}

absl::StatusOr<Handshake::WriteEffect> Handshake::OnPlcWrite(int address,
                                                             const std::vector<uint16_t>& values) {
  const int end = address + static_cast<int>(values.size());
  if (address < kFirstPlcRegister || end > kRegisterCount || values.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("registers %d..%d are not writable: the PLC writes %d..%d", address,
                        end - 1, kFirstPlcRegister, kRegisterCount - 1));
  }
  const uint16_t previous_trigger = registers_[kRegTrigger];
  const uint16_t previous_ack = registers_[kRegAck];
  for (size_t i = 0; i < values.size(); ++i) Set(address + static_cast<int>(i), values[i]);

  const uint16_t ack = registers_[kRegAck];
  if (ack != previous_ack && ack == registers_[kRegResultSeq] && !busy()) ClearResult();

  const uint16_t seq = registers_[kRegTrigger];
  if (seq == previous_trigger || seq == 0) return WriteEffect{};
  if (busy() || !ready_) {  // counted and answered, never dropped silently
    Set(kRegBusyTriggers, static_cast<uint16_t>(registers_[kRegBusyTriggers] + 1));
    Set(kRegBusySeq, seq);
    return WriteEffect{.answered_busy = seq};
  }
  in_progress_ = seq;
  ClearResult();  // the next trigger replaces the previous result
  Set(kRegStatus, static_cast<uint16_t>(BoxStatus::kBusy));
  Set(kRegTriggersAccepted, static_cast<uint16_t>(registers_[kRegTriggersAccepted] + 1));
  return WriteEffect{.started = Trigger{seq, registers_[kRegRecipe],
                                        (static_cast<uint32_t>(registers_[kRegPartIdHigh]) << 16) |
                                            registers_[kRegPartIdLow]}};
}

bool Handshake::OnResult(uint16_t seq, const Outcome& outcome) {
  if (in_progress_ != seq) return false;
  in_progress_.reset();
  Set(kRegResultState, static_cast<uint16_t>(outcome.state));
  Set(kRegClassIndex, outcome.class_index);
  Set(kRegScoreX1000, outcome.score_x1000);
  Set(kRegNeedsInspection, outcome.needs_inspection ? 1 : 0);
  Set(kRegErrorCode, static_cast<uint16_t>(outcome.error));
  if (outcome.state != ResultState::kError) Set(kRegModelVersion, outcome.model_version);
  Set(kRegResultSeq, seq);
  Set(kRegStatus, static_cast<uint16_t>(ready_ ? BoxStatus::kReady : BoxStatus::kStarting));
  return true;
}

void Handshake::SetReady(bool ready) {
  ready_ = ready;
  if (!busy()) {
    Set(kRegStatus, static_cast<uint16_t>(ready ? BoxStatus::kReady : BoxStatus::kStarting));
  }
}

void Handshake::Tick(absl::Time now) {
  const int64_t beats = absl::ToInt64Seconds(now - last_beat_);
  if (beats <= 0) return;
  last_beat_ += absl::Seconds(beats);
  Set(kRegHeartbeat, static_cast<uint16_t>(registers_[kRegHeartbeat] + beats));
}

}  // namespace matid::plc
