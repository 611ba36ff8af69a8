#include "bridge/refused_message_isolation.h"

#include <algorithm>

namespace matid {

size_t RefusedMessageIsolation::Take(const std::vector<int64_t>& oldest) const {
  if (oldest.empty()) return 0;
  if (alone_ == oldest.front()) return 1;
  if (suspect_.has_value()) {
    const auto at = std::find(oldest.begin(), oldest.end(), *suspect_);
    if (at == oldest.begin()) return 1;               // the suspect is next: alone
    return static_cast<size_t>(at - oldest.begin());  // everything before it
  }
  return oldest.size();
}

RefusedMessageIsolation::Next RefusedMessageIsolation::OnNotAcknowledged(int64_t head,
                                                                         size_t sent) {
  if (sent > 1) {
    alone_ = head;
    return Next::kRetry;
  }
  alone_.reset();
  return Next::kMoveHeadToBack;
}

void RefusedMessageIsolation::OnMovedToBack(int64_t moved_to) { suspect_ = moved_to; }

void RefusedMessageIsolation::OnDelivered(const std::vector<int64_t>& delivered) {
  alone_.reset();
  if (suspect_.has_value() &&
      std::find(delivered.begin(), delivered.end(), *suspect_) != delivered.end()) {
    suspect_.reset();
  }
}

}  // namespace matid
