// The Sparkplug B 3.0 edge node's session rules as a pure object: the
// topics, bdSeq (0..255, a new one for every MQTT CONNECT, in the will's
// NDEATH and the NBIRTH), seq (0 in NBIRTH, then +1 per BIRTH/DATA/DDEATH,
// wrapping after 255), a DBIRTH per camera before its first DDATA, a DDATA
// per result (metrics by alias, timestamped with the capture time, flagged
// is_historical when they were stored across an outage), NDATA when the
// server's model or state changes, a DDEATH when a camera has been silent
// too long, and rebirth on NCMD "Node Control/Rebirth". Every method takes
// the time; nothing here reads a clock or does I/O, so tests step it.
// Thread-safety: none; the owner serialises calls.
#ifndef MATID_SPARKPLUG_EDGE_NODE_SESSION_H_
#define MATID_SPARKPLUG_EDGE_NODE_SESSION_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/result_message.h"
#include "sparkplug/metrics.h"

namespace matid::sparkplug {

struct EdgeNodeOptions {
  std::string group_id = "matid";
  std::string edge_node_id;  // required: the box
  // A camera without a result for this long gets a DDEATH; its next result
  // a new DBIRTH.
  absl::Duration device_timeout = absl::Seconds(60);
  // Cameras the node keeps aliases and last values for (bounds memory
  // against a flood of camera ids on the local broker).
  int max_cameras = 256;
};

// One MQTT message to publish: QoS 0 and not retained, except the will.
struct Outgoing {
  std::string topic;
  std::string payload;  // a serialized Payload
};

class EdgeNodeSession {
 public:
  // INVALID_ARGUMENT naming --sparkplug_group or --sparkplug_node when an id
  // is empty or holds '/', '+' or '#'; --device_timeout or --max_cameras when not positive.
  static absl::StatusOr<EdgeNodeSession> Create(const EdgeNodeOptions& options);

  // The will for the next CONNECT: an NDEATH with the next bdSeq (0 first).
  // The session is not born until Birth.
  Outgoing NextConnection(absl::Time now);
  // Once connected, and again on a rebirth request: NBIRTH (seq 0, the
  // current bdSeq) and a DBIRTH for each live camera with its last values.
  std::vector<Outgoing> Birth(const NodeStatus& status, absl::Time now);
  // The connection ended: nothing more is published until the next Birth.
  void Disconnected() { born_ = false; }
  // An NDEATH for a deliberate disconnect, with the current bdSeq.
  Outgoing Death(absl::Time now) const;

  // One result: a DBIRTH first when its camera is not born, then its DDATA.
  // Requires born(). RESOURCE_EXHAUSTED naming --max_cameras for a camera
  // beyond the limit.
  absl::StatusOr<std::vector<Outgoing>> Result(const ResultMessage& result, bool historical,
                                               absl::Time now);
  // An NDATA with the node metrics that changed, or nothing. Requires born().
  std::vector<Outgoing> Status(const NodeStatus& status, absl::Time now);
  // DDEATHs for the cameras silent beyond device_timeout. Requires born().
  std::vector<Outgoing> ExpireDevices(absl::Time now);

  // True when an NCMD payload asks for a rebirth; INVALID_ARGUMENT when it
  // is not a Sparkplug payload.
  static absl::StatusOr<bool> IsRebirthRequest(absl::string_view ncmd_payload);

  bool born() const { return born_; }
  uint64_t bd_seq() const { return bd_seq_; }
  std::string NcmdTopic() const;
  // The cameras born now, by id.
  std::vector<std::string> LiveDevices() const;

 private:
  struct Device {
    uint64_t alias_offset = 0;  // kDeviceAliasBase * (index + 1)
    std::vector<MetricValue> last_values;
    absl::Time last_seen;
    bool born = false;
  };

  explicit EdgeNodeSession(const EdgeNodeOptions& options) : options_(options) {}
  std::string Topic(absl::string_view type, absl::string_view device = "") const;
  uint64_t NextSeq();
  Outgoing DeviceBirth(const std::string& id, Device& device, absl::Time now);

  EdgeNodeOptions options_;
  uint64_t bd_seq_next_ = 0;  // for the next CONNECT
  uint64_t bd_seq_ = 0;       // of this connection
  uint64_t seq_ = 0;          // of the last message published
  bool born_ = false;
  NodeStatus status_;  // as last published
  std::map<std::string, Device> devices_;
};

}  // namespace matid::sparkplug

#endif  // MATID_SPARKPLUG_EDGE_NODE_SESSION_H_
