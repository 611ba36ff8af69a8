// Recipes: which classes a station accepts as OK, per recipe id the PLC
// writes, and the pure decision from a classification to the OK/NG the PLC
// reads. Recipe 0 is the default (--accepted_classes); a --recipes file
// adds more:
//   {"recipes": [{"id": 1, "name": "boots", "accepted": ["Ankle boot"]}]}
// A result is OK when its top-1 label is accepted and its score is not
// under the inspection threshold; NG otherwise. Immutable after Create;
// safe from any thread.
#ifndef MATID_CLIENT_PLC_RECIPES_H_
#define MATID_CLIENT_PLC_RECIPES_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/plc/handshake.h"
#include "matid/v1/matid.pb.h"

namespace matid::plc {

struct Recipe {
  uint16_t id = 0;
  std::string name;
  std::set<std::string> accepted;  // class labels that are OK
};

class Recipes {
 public:
  // `default_accepted` (when not empty) becomes recipe 0; `json` (may be
  // empty) adds the file's recipes. INVALID_ARGUMENT naming the flag and
  // what is wrong: no recipe at all, bad JSON, an id outside 1..65535 or
  // twice, a recipe without accepted classes.
  static absl::StatusOr<Recipes> Create(const std::vector<std::string>& default_accepted,
                                        absl::string_view json);

  // nullptr when no recipe has this id.
  const Recipe* Find(uint16_t id) const;
  size_t size() const { return recipes_.size(); }

 private:
  std::map<uint16_t, Recipe> recipes_;
};

// The PLC's view of a classification: OK/NG by the recipe, the top-1 class
// and score x 1000, needs-inspection under `inspection_threshold`, and the
// repository version (0 when it is not a number).
Outcome DecideOutcome(const v1::ClassifyResponse& response, const Recipe& recipe,
                      double inspection_threshold);

// The error a failed inspection reports: UNAVAILABLE -> kServerUnavailable,
// DEADLINE_EXCEEDED -> kTimeout, INVALID_ARGUMENT/OUT_OF_RANGE/
// RESOURCE_EXHAUSTED -> kRefused, FAILED_PRECONDITION -> kCaptureFailed.
Outcome ErrorOutcome(const absl::Status& status);

}  // namespace matid::plc

#endif  // MATID_CLIENT_PLC_RECIPES_H_
