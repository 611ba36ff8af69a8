// What a Classifier offers each preprocessed image to, besides its own
// model: the shadow version of the model (server/shadow/shadow_tap.h is the
// implementation). The core sees only this interface, so it does not depend
// on the shadow module.
// Thread-safety: implementations must allow Offer, and calling the
// PrimaryAnswer it returns, from any thread.
#ifndef MATID_SERVER_CORE_CLASSIFICATION_TAP_H_
#define MATID_SERVER_CORE_CLASSIFICATION_TAP_H_

#include <functional>
#include <vector>

#include "absl/strings/string_view.h"

namespace matid {

class ClassificationTap {
 public:
  virtual ~ClassificationTap() = default;

  // Called with the primary's top-1 for an offered image, when it has one;
  // dropping it uncalled counts the image as skipped.
  using PrimaryAnswer = std::function<void(int label, float score)>;

  // One preprocessed image of the primary (`primary_queue_depth`: images
  // waiting in the primary's queue now; `encoded`: the request's image
  // bytes, empty for raw pixels or tensors). Returns the function to give
  // the primary's answer to, or an empty function when the image is not
  // taken.
  virtual PrimaryAnswer Offer(const std::vector<float>& input, int primary_queue_depth,
                              absl::string_view encoded) const = 0;
};

}  // namespace matid

#endif  // MATID_SERVER_CORE_CLASSIFICATION_TAP_H_
