// The life of a model version in the server: LOADING, AVAILABLE (serving
// requests), UNLOADING (no new requests; finishing the ones it admitted)
// and FAILED (did not load, warm up or pass its smoke check; the previous
// version keeps serving), and which moves between them are legal. Plain
// values, safe from any thread.
#ifndef MATID_SERVER_CORE_MODEL_VERSION_STATE_H_
#define MATID_SERVER_CORE_MODEL_VERSION_STATE_H_

#include <array>
#include <optional>

#include "absl/strings/string_view.h"

namespace matid {

enum class ModelVersionState { kLoading, kAvailable, kUnloading, kFailed };

inline constexpr std::array<absl::string_view, 4> kModelVersionStates = {"LOADING", "AVAILABLE",
                                                                         "UNLOADING", "FAILED"};

inline absl::string_view ModelVersionStateName(ModelVersionState state) {
  return kModelVersionStates[static_cast<int>(state)];
}

// The moves a version makes while the manager holds it (`from` nullopt: a
// version it does not hold yet). A new version is LOADING, or FAILED when its
// folder is missing; a LOADING one becomes AVAILABLE or FAILED; a FAILED one
// is loaded again (its folder changed) or fails again with a new reason. An
// AVAILABLE version only leaves, as UNLOADING, outside this state: nothing
// moves it back.
inline bool IsLegalTransition(std::optional<ModelVersionState> from, ModelVersionState to) {
  using State = ModelVersionState;
  if (!from.has_value()) return to == State::kLoading || to == State::kFailed;
  switch (*from) {
    case State::kLoading:
      return to == State::kAvailable || to == State::kFailed;
    case State::kFailed:
      return to == State::kLoading || to == State::kFailed;
    case State::kAvailable:
    case State::kUnloading:
      return false;
  }
  return false;
}

}  // namespace matid

#endif  // MATID_SERVER_CORE_MODEL_VERSION_STATE_H_
