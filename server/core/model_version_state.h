// The life of a model version in the server: LOADING, AVAILABLE (serving
// requests), UNLOADING (no new requests; finishing the ones it admitted)
// and FAILED (did not load, warm up or pass its smoke check; the previous
// version keeps serving). Plain values, safe from any thread.
#ifndef MATID_SERVER_CORE_MODEL_VERSION_STATE_H_
#define MATID_SERVER_CORE_MODEL_VERSION_STATE_H_

#include <array>

#include "absl/strings/string_view.h"

namespace matid {

enum class ModelVersionState { kLoading, kAvailable, kUnloading, kFailed };

inline constexpr std::array<absl::string_view, 4> kModelVersionStates = {"LOADING", "AVAILABLE",
                                                                         "UNLOADING", "FAILED"};

inline absl::string_view ModelVersionStateName(ModelVersionState state) {
  return kModelVersionStates[static_cast<int>(state)];
}

}  // namespace matid

#endif  // MATID_SERVER_CORE_MODEL_VERSION_STATE_H_
