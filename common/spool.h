// A durable store-and-forward queue: the bridge's to the cloud, the
// Sparkplug node's to the plant broker. An SQLite database in WAL mode. A
// message is appended (and fsynced, with sync=full) before the local broker
// gets its PUBACK, and removed only after delivery is confirmed, so
// nothing is lost across crashes, kill -9 or network loss. Duplicates of a
// message_id are stored once. Bounded by bytes and age: when over a bound,
// the OLDEST messages are dropped and counted (persisted across restarts).
// A full disk is a bound too: the first write that meets it gives back a
// reserve file (`<path>-reserve`, 512 KiB, made while the disk has room)
// so that the spool can delete and checkpoint, drops the oldest beyond
// seven eighths of what it holds, and keeps that as its limit (saved in
// the database) until the disk has room again; the write is then retried.
// Malformed messages go to a dead-letter table with their reason, inside
// the same budget: each keeps the first 4 KiB of its payload (1 KiB of its
// topic), and together they take at most an eighth of max_bytes, the
// oldest dropped and counted first; messages get max_bytes less that.
// Thread-safety: every method may be called from any thread (one mutex).
#ifndef MATID_COMMON_SPOOL_H_
#define MATID_COMMON_SPOOL_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct sqlite3;

namespace matid {

struct SpoolOptions {
  std::string path;                              // database file
  int64_t max_bytes = 256LL << 20;               // payload bytes kept at most
  absl::Duration max_age = absl::Hours(24 * 7);  // older messages are dropped
  bool sync_full = true;                         // fsync every commit (power-loss safe)
};

struct SpooledMessage {
  int64_t seq = 0;  // order of arrival
  std::string message_id;
  std::string topic;
  std::string payload;
  absl::Time received_at;
};

struct SpoolStats {
  int64_t messages = 0;
  int64_t bytes = 0;
  absl::Time oldest;          // InfiniteFuture when empty
  int64_t dropped_total = 0;  // ever, across restarts
  int64_t dead_letters = 0;
  int64_t dead_letters_dropped = 0;  // ever, across restarts
};

class Spool {
 public:
  static constexpr size_t kDeadLetterPayloadBytes = 4096;
  static constexpr size_t kDeadLetterTopicBytes = 1024;
  static constexpr int64_t kDeadLetterShare = 8;  // dead letters: max_bytes / 8

  static absl::StatusOr<std::unique_ptr<Spool>> Open(const SpoolOptions& options);
  ~Spool();

  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Stores a message durably. Returns false (and stores nothing) when a
  // message with the same id is already spooled. Every write that meets a
  // full disk makes room and is tried once more (see the top); an error
  // (RESOURCE_EXHAUSTED for a disk still full) means nothing was stored.
  absl::StatusOr<bool> Append(absl::string_view message_id, absl::string_view topic,
                              absl::string_view payload, absl::Time received_at);

  // Records a message that will never be forwarded, with the reason (its
  // start only, see above), dropping the oldest beyond their share.
  absl::Status DeadLetter(absl::string_view topic, absl::string_view payload,
                          absl::string_view reason, absl::Time received_at);

  // The oldest messages, at most `max_messages` and (after the first)
  // `max_payload_bytes` in all once joined by newlines (JSON lines).
  absl::StatusOr<std::vector<SpooledMessage>> Oldest(int max_messages, int64_t max_payload_bytes);

  // Removes delivered messages.
  absl::Status Remove(const std::vector<int64_t>& seqs);

  // Puts message `seq` behind every other, keeping its id, payload and
  // arrival time (so the age limit still applies); returns its new seq.
  absl::StatusOr<int64_t> MoveToBack(int64_t seq);

  // Drops the oldest messages beyond max_bytes (or a full disk's limit) or
  // older than max_age; returns how many were dropped since the last call
  // (here, or by Append keeping a full disk's limit).
  absl::StatusOr<int64_t> EnforceLimits(absl::Time now);

  absl::StatusOr<SpoolStats> Stats();

  // Dead letters as (reason, payload), oldest first, for inspection and tests.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> DeadLetters(int limit);

 private:
  static constexpr int64_t kReserveBytes = 512 << 10;  // twice the log's limit

  explicit Spool(const SpoolOptions& options) : options_(options) {}
  // Every helper below needs mu_ held.
  absl::Status Exec(const char* sql);
  absl::Status AddToCounter(const char* name, int64_t count);
  // The rows the last statement changed, added to `counter`; how many.
  absl::StatusOr<int64_t> CountChanges(const char* counter);
  absl::Status SetCounter(const char* name, int64_t value);
  int64_t Counter(const char* name);
  absl::Status DeadLetterLocked(absl::string_view topic, absl::string_view payload,
                                absl::string_view reason, absl::Time received_at);
  absl::Status RemoveLocked(const std::vector<int64_t>& seqs);
  // Drop the oldest messages (counted) received before `oldest_kept`, or
  // beyond `max_bytes` with the dead letters; how many.
  absl::StatusOr<int64_t> DropOlderThan(absl::Time oldest_kept);
  absl::StatusOr<int64_t> DropBeyond(int64_t max_bytes);
  // max_bytes, or a full disk's limit when lower.
  int64_t ByteLimit() const;
  int64_t PayloadBytes();
  int64_t FreeDiskBytes() const;
  // Runs `write`; when it met a full disk, makes room and runs it again.
  template <typename Write>
  auto RetryWhenFull(Write write) -> decltype(write());
  void MakeRoom();
  void KeepReserve();

  const SpoolOptions options_;
  std::mutex mu_;
  sqlite3* db_ = nullptr;               // owned; guarded by mu_
  int64_t disk_limit_bytes_ = 0;        // guarded by mu_: a full disk's limit (0: none)
  int64_t bytes_since_disk_check_ = 0;  // guarded by mu_
  int64_t dropped_by_disk_ = 0;         // guarded by mu_: since the last EnforceLimits
};

}  // namespace matid

#endif  // MATID_COMMON_SPOOL_H_
