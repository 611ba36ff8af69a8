// The PLC handshake as a pure state machine over the register map
// (register_map.h): the PLC's writes start inspections, results land in the
// box registers all at once, a trigger while busy is counted and answered
// busy, a result stays until acknowledged or the next trigger, and the
// heartbeat follows the time it is given. No I/O and no clock of its own:
// tests step it. Not thread-safe: its owner serialises calls.
#ifndef MATID_CLIENT_PLC_HANDSHAKE_H_
#define MATID_CLIENT_PLC_HANDSHAKE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/plc/register_map.h"

namespace matid::plc {

// What the PLC asked for when it wrote a new trigger sequence.
struct Trigger {
  uint16_t seq = 0;
  uint16_t recipe = 0;
  uint32_t part_id = 0;
};

// What one inspection ended with, as the PLC will read it.
struct Outcome {
  ResultState state = ResultState::kError;
  uint16_t class_index = kNoClass;
  uint16_t score_x1000 = 0;
  bool needs_inspection = false;
  uint16_t model_version = 0;
  ErrorCode error = ErrorCode::kNone;
};

class Handshake {
 public:
  explicit Handshake(absl::Time now);

  // What one write of the PLC did: started an inspection, or brought a
  // trigger that was answered busy (counted in its registers), or neither
  // (an acknowledgement, a recipe, the same sequence again).
  struct WriteEffect {
    std::optional<Trigger> started;
    std::optional<uint16_t> answered_busy;  // the trigger's sequence
  };

  // The PLC wrote `values` from `address` on. INVALID_ARGUMENT when any of
  // them lies outside the PLC's registers (nothing is changed then).
  absl::StatusOr<WriteEffect> OnPlcWrite(int address, const std::vector<uint16_t>& values);

  // The inspection of trigger `seq` ended: every result register is set at
  // once and the box is ready again. A result for another sequence than the
  // one in progress is ignored (false).
  bool OnResult(uint16_t seq, const Outcome& outcome);

  // The box can (true) or cannot yet (false) inspect: kStarting until set.
  void SetReady(bool ready);

  // Advances the heartbeat by the whole seconds since the last beat.
  void Tick(absl::Time now);

  const Registers& registers() const { return registers_; }
  bool busy() const { return in_progress_.has_value(); }

 private:
  void ClearResult();
  void Set(int address, uint16_t value) { registers_[address] = value; }

  Registers registers_{};
  std::optional<uint16_t> in_progress_;
  bool ready_ = false;
  absl::Time last_beat_;
};

}  // namespace matid::plc

#endif  // MATID_CLIENT_PLC_HANDSHAKE_H_
