// Keeps one message the cloud keeps refusing from holding back the rest.
// The forwarder always sends the oldest messages; AWS IoT Core answers a
// publish it refuses (policy, size it enforces, rate) by closing the
// connection, so without this the same batch would be sent again forever
// and nothing behind it delivered (issue 26 item 4). The rule:
//   - a batch of several that is not acknowledged is sent again as its
//     oldest message alone;
//   - a message alone that is not acknowledged goes behind every other
//     (Spool::MoveToBack: kept, with its arrival time, so the age limit
//     still applies), and batches are cut before it until it is delivered.
// So every message behind a refused one is delivered after two failed
// publishes. A lost connection looks the same and only reorders. Pure
// decisions; not thread-safe (the forwarder owns it).
#ifndef MATID_BRIDGE_REFUSED_MESSAGE_ISOLATION_H_
#define MATID_BRIDGE_REFUSED_MESSAGE_ISOLATION_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace matid {

class RefusedMessageIsolation {
 public:
  // How many of `oldest` (spool sequence numbers, oldest first) the next
  // publish takes: all, or up to the suspect, or the oldest alone.
  size_t Take(const std::vector<int64_t>& oldest) const;

  // What to do after a publish of `sent` messages starting at `head` was
  // not acknowledged.
  enum class Next { kRetry, kMoveHeadToBack };
  Next OnNotAcknowledged(int64_t head, size_t sent);
  // The head was moved behind the others; it now has sequence `moved_to`.
  void OnMovedToBack(int64_t moved_to);
  // A publish of these messages was acknowledged.
  void OnDelivered(const std::vector<int64_t>& delivered);

 private:
  std::optional<int64_t> alone_;    // the oldest is sent alone next (a batch with it failed)
  std::optional<int64_t> suspect_;  // moved to the back: batches stop before it
};

}  // namespace matid

#endif  // MATID_BRIDGE_REFUSED_MESSAGE_ISOLATION_H_
