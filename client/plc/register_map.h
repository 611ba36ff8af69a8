// The Modbus TCP register map matid-plc serves, version 1. All registers
// are holding registers (function 3 reads, 6 and 16 write), 16-bit,
// addressed from 0. The box writes 0..19; the PLC may write only 20..24
// (a write elsewhere is refused with exception 2, illegal data address).
// docs/plc.md is the table a controls engineer reads; this file is the one
// the code uses. Constants only; safe from any thread.
#ifndef MATID_CLIENT_PLC_REGISTER_MAP_H_
#define MATID_CLIENT_PLC_REGISTER_MAP_H_

#include <array>
#include <cstdint>

namespace matid::plc {

inline constexpr uint16_t kMapVersion = 1;

// Box to PLC.
inline constexpr int kRegMapVersion = 0;         // kMapVersion
inline constexpr int kRegStatus = 1;             // BoxStatus
inline constexpr int kRegHeartbeat = 2;          // +1 every second, wraps at 65535
inline constexpr int kRegResultSeq = 3;          // the trigger sequence the result answers
inline constexpr int kRegResultState = 4;        // ResultState
inline constexpr int kRegClassIndex = 5;         // top-1 class index (kNoClass when none)
inline constexpr int kRegScoreX1000 = 6;         // top-1 score x 1000 (0..1000)
inline constexpr int kRegNeedsInspection = 7;    // 1: top-1 score under the threshold
inline constexpr int kRegErrorCode = 8;          // ErrorCode, with ResultState::kError
inline constexpr int kRegModelVersion = 9;       // repository version that answered (0: unknown)
inline constexpr int kRegBusyTriggers = 10;      // triggers answered busy, wraps
inline constexpr int kRegBusySeq = 11;           // sequence of the last trigger answered busy
inline constexpr int kRegTriggersAccepted = 12;  // triggers inspected, wraps

// PLC to box.
inline constexpr int kRegTrigger = 20;     // a new non-zero sequence number starts an inspection
inline constexpr int kRegRecipe = 21;      // recipe id for the next trigger (0: default)
inline constexpr int kRegPartIdHigh = 22;  // part id for the next trigger, high word
inline constexpr int kRegPartIdLow = 23;   // and low word
inline constexpr int kRegAck = 24;         // writing the result sequence clears the result

inline constexpr int kFirstPlcRegister = kRegTrigger;
inline constexpr int kRegisterCount = 25;

inline constexpr uint16_t kNoClass = 0xFFFF;

enum class BoxStatus : uint16_t { kStarting = 0, kReady = 1, kBusy = 2 };
enum class ResultState : uint16_t { kNone = 0, kOk = 1, kNg = 2, kError = 3 };
enum class ErrorCode : uint16_t {
  kNone = 0,
  kServerUnavailable = 1,  // matid-server down or unreachable
  kTimeout = 2,            // no answer within --inspection_timeout_ms
  kCaptureFailed = 3,      // the frame source gave no frame
  kRefused = 4,            // the server refused the image
  kUnknownRecipe = 5,      // the recipe register names no configured recipe
  kInternal = 6,
};

using Registers = std::array<uint16_t, kRegisterCount>;

}  // namespace matid::plc

#endif  // MATID_CLIENT_PLC_REGISTER_MAP_H_
