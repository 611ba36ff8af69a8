// The smoke check a model version passes before it serves, beyond its
// warm-up (which checks one score per label): the golden images its folder
// may hold (golden.json, see GoldenSet in model_metadata.proto) are
// classified through the version's own preprocessing and batcher, and
// enough of them must come out with their expected label.
// Call it from one thread at a time per model; it blocks until done.
#ifndef MATID_SERVER_REPOSITORY_GOLDEN_CHECK_H_
#define MATID_SERVER_REPOSITORY_GOLDEN_CHECK_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/core/serving_model.h"

namespace matid {

inline constexpr char kGoldenSetFile[] = "golden.json";

// OK when `version_dir` has no golden.json or enough images pass.
// FAILED_PRECONDITION saying how many passed and which failed;
// INVALID_ARGUMENT for a malformed golden.json (naming what is wrong).
absl::Status CheckGoldenImages(const std::string& version_dir, const ServingModel& model,
                               absl::Duration timeout = absl::Seconds(60));

}  // namespace matid

#endif  // MATID_SERVER_REPOSITORY_GOLDEN_CHECK_H_
