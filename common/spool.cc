#include "common/spool.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace matid {
namespace {

// RESOURCE_EXHAUSTED for a full disk (the spool makes room and tries
// again), INTERNAL for any other SQLite result code `rc`.
absl::Status SpoolError(int rc, std::string message) {
  if (rc == SQLITE_FULL) return absl::ResourceExhaustedError(std::move(message));
  return absl::InternalError(std::move(message));
}

template <typename T>
bool DiskFull(const T& result) {
  if constexpr (std::is_same_v<T, absl::Status>) {
    return absl::IsResourceExhausted(result);
  } else {
    return absl::IsResourceExhausted(result.status());
  }
}

// Owns one prepared statement.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  absl::Status Error(absl::string_view what) const {
    return SpoolError(sqlite3_errcode(db_),
                      absl::StrCat("spool ", what, ": ", sqlite3_errmsg(db_)));
  }
  void BindText(int index, absl::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int index, absl::string_view blob) {
    sqlite3_bind_blob(stmt_, index, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

std::string ColumnString(sqlite3_stmt* stmt, int column) {
  const void* data = sqlite3_column_blob(stmt, column);
  const int size = sqlite3_column_bytes(stmt, column);
  return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
}

int64_t Millis(absl::Time t) { return absl::ToUnixMillis(t); }

}  // namespace

absl::StatusOr<std::unique_ptr<Spool>> Spool::Open(const SpoolOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("spool path is empty");
  if (options.max_bytes <= 0) return absl::InvalidArgumentError("spool max_bytes must be > 0");
  std::unique_ptr<Spool> spool(new Spool(options));
  std::lock_guard<std::mutex> lock(spool->mu_);
  if (sqlite3_open_v2(options.path.c_str(), &spool->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return absl::UnavailableError(absl::StrCat("cannot open spool ", options.path, ": ",
                                               spool->db_ ? sqlite3_errmsg(spool->db_) : "?"));
  }
  sqlite3_busy_timeout(spool->db_, 5000);
  for (const char* sql :
       {"PRAGMA journal_mode=WAL",
        options.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
        // The write-ahead log is kept small too (checkpointed every 64
        // pages, cut back to 256 KiB), not SQLite's 4 MB.
        "PRAGMA wal_autocheckpoint=64", "PRAGMA journal_size_limit=262144",
        "CREATE TABLE IF NOT EXISTS messages ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE,"
        " topic TEXT NOT NULL, payload BLOB NOT NULL, received_at_ms INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS dead_letters ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,"
        " reason TEXT NOT NULL, received_at_ms INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT OR IGNORE INTO counters VALUES ('dropped', 0)",
        "INSERT OR IGNORE INTO counters VALUES ('dead_letters_dropped', 0)",
        "INSERT OR IGNORE INTO counters VALUES ('disk_limit_bytes', 0)"}) {
    absl::Status status = spool->Exec(sql);
    if (!status.ok()) return status;
  }
  spool->disk_limit_bytes_ = spool->Counter("disk_limit_bytes");
  spool->KeepReserve();
  return spool;
}

Spool::~Spool() {
  std::lock_guard<std::mutex> lock(mu_);
  if (db_ != nullptr) sqlite3_close(db_);
}

absl::Status Spool::Exec(const char* sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string message =
      absl::StrCat("spool ", options_.path, ": ", error ? error : "?", " in: ", sql);
  sqlite3_free(error);
  return SpoolError(rc, std::move(message));
}

template <typename Write>
auto Spool::RetryWhenFull(Write write) -> decltype(write()) {
  auto result = write();
  if (!DiskFull(result)) return result;
  if (!sqlite3_get_autocommit(db_)) Exec("ROLLBACK").IgnoreError();
  MakeRoom();
  return write();
}

void Spool::MakeRoom() {
  // Deleting rows and checkpointing are written to the log first, which
  // needs disk: the reserve gives it back.
  std::error_code ignored;
  std::filesystem::remove(options_.path + "-reserve", ignored);
  Exec("PRAGMA wal_checkpoint(RESTART)").IgnoreError();
  // What the disk holds is the limit now, less an eighth: the pages freed
  // are reused, so the database file does not need to grow again.
  const int64_t limit = std::max<int64_t>(PayloadBytes() * 7 / 8, 1);
  disk_limit_bytes_ = disk_limit_bytes_ > 0 ? std::min(disk_limit_bytes_, limit) : limit;
  const bool in_transaction = Exec("BEGIN IMMEDIATE").ok();
  absl::StatusOr<int64_t> dropped = DropBeyond(ByteLimit());
  absl::Status saved =
      dropped.ok() ? SetCounter("disk_limit_bytes", disk_limit_bytes_) : dropped.status();
  if (in_transaction && saved.ok()) saved = Exec("COMMIT");
  if (in_transaction && !saved.ok()) Exec("ROLLBACK").IgnoreError();
  if (saved.ok()) dropped_by_disk_ += *dropped;
  Exec("PRAGMA wal_checkpoint(RESTART)").IgnoreError();
  bytes_since_disk_check_ = 0;
}

void Spool::KeepReserve() {
  const std::string path = options_.path + "-reserve";
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  if (!error && size >= static_cast<std::uintmax_t>(kReserveBytes)) return;  // there already
  if (FreeDiskBytes() < 2 * kReserveBytes) return;  // made once the disk has room again
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  // Really allocated, not a sparse file: it is what a full disk gives back.
  // A partial one is cut to nothing rather than left misleading.
  if (posix_fallocate(fd, 0, kReserveBytes) != 0) (void)!ftruncate(fd, 0);
  close(fd);
}

int64_t Spool::FreeDiskBytes() const {
  const std::filesystem::path folder = std::filesystem::path(options_.path).parent_path();
  struct statvfs disk;
  if (statvfs(folder.empty() ? "." : folder.c_str(), &disk) != 0) return 0;
  return static_cast<int64_t>(disk.f_bavail) * static_cast<int64_t>(disk.f_frsize);
}

int64_t Spool::PayloadBytes() {
  Statement sum(db_, "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM messages");
  if (!sum.ok() || sqlite3_step(sum.get()) != SQLITE_ROW) return 0;
  return sqlite3_column_int64(sum.get(), 0);
}

int64_t Spool::Counter(const char* name) {
  Statement select(db_, "SELECT value FROM counters WHERE name = ?");
  if (!select.ok()) return 0;
  select.BindText(1, name);
  return sqlite3_step(select.get()) == SQLITE_ROW ? sqlite3_column_int64(select.get(), 0) : 0;
}

absl::Status Spool::SetCounter(const char* name, int64_t value) {
  Statement update(db_, "UPDATE counters SET value = ? WHERE name = ?");
  if (!update.ok()) return update.Error("prepare count");
  sqlite3_bind_int64(update.get(), 1, value);
  update.BindText(2, name);
  if (sqlite3_step(update.get()) != SQLITE_DONE) return update.Error("count");
  return absl::OkStatus();
}

int64_t Spool::ByteLimit() const {
  return disk_limit_bytes_ > 0 ? std::min(options_.max_bytes, disk_limit_bytes_)
                               : options_.max_bytes;
}

absl::StatusOr<bool> Spool::Append(absl::string_view message_id, absl::string_view topic,
                                   absl::string_view payload, absl::Time received_at) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<bool> inserted = RetryWhenFull([&]() -> absl::StatusOr<bool> {
    Statement insert(db_,
                     "INSERT OR IGNORE INTO messages (message_id, topic, payload, received_at_ms)"
                     " VALUES (?, ?, ?, ?)");
    if (!insert.ok()) return insert.Error("prepare append");
    insert.BindText(1, message_id);
    insert.BindText(2, topic);
    insert.BindBlob(3, payload);
    sqlite3_bind_int64(insert.get(), 4, Millis(received_at));
    if (sqlite3_step(insert.get()) != SQLITE_DONE) return insert.Error("append");
    return sqlite3_changes(db_) > 0;
  });
  // Under a full disk's limit the newest are kept within it between the
  // caller's EnforceLimits too: checked every sixteenth of it appended.
  if (!inserted.ok() || disk_limit_bytes_ == 0) return inserted;
  bytes_since_disk_check_ += static_cast<int64_t>(payload.size());
  if (bytes_since_disk_check_ > disk_limit_bytes_ / 16) {
    bytes_since_disk_check_ = 0;
    absl::StatusOr<int64_t> dropped = DropBeyond(ByteLimit());
    if (dropped.ok()) dropped_by_disk_ += *dropped;
  }
  return inserted;
}

absl::Status Spool::DeadLetter(absl::string_view topic, absl::string_view payload,
                               absl::string_view reason, absl::Time received_at) {
  // Kept short: the start of a message is enough to see what it was.
  const absl::string_view kept_topic = topic.substr(0, kDeadLetterTopicBytes);
  const absl::string_view kept_payload = payload.substr(0, kDeadLetterPayloadBytes);
  std::string full_reason(reason);
  if (kept_payload.size() < payload.size() || kept_topic.size() < topic.size()) {
    absl::StrAppend(&full_reason, " (topic of ", topic.size(), " bytes, payload of ",
                    payload.size(), " bytes; the first ", kept_topic.size(), " and ",
                    kept_payload.size(), " kept)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  return RetryWhenFull(
      [&] { return DeadLetterLocked(kept_topic, kept_payload, full_reason, received_at); });
}

absl::Status Spool::DeadLetterLocked(absl::string_view topic, absl::string_view payload,
                                     absl::string_view reason, absl::Time received_at) {
  absl::Status status = Exec("BEGIN IMMEDIATE");
  if (!status.ok()) return status;
  auto fail = [this](absl::Status s) {
    Exec("ROLLBACK").IgnoreError();
    return s;
  };
  {
    Statement insert(db_,
                     "INSERT INTO dead_letters (topic, payload, reason, received_at_ms)"
                     " VALUES (?, ?, ?, ?)");
    if (!insert.ok()) return fail(insert.Error("prepare dead letter"));
    insert.BindText(1, topic);
    insert.BindBlob(2, payload);
    insert.BindText(3, reason);
    sqlite3_bind_int64(insert.get(), 4, Millis(received_at));
    if (sqlite3_step(insert.get()) != SQLITE_DONE) return fail(insert.Error("dead letter"));
  }
  {
    // Keep the newest dead letters that add up to at most their share.
    Statement over(db_,
                   "DELETE FROM dead_letters WHERE id <= (SELECT id FROM ("
                   " SELECT id, SUM(LENGTH(payload) + LENGTH(topic) + LENGTH(reason))"
                   " OVER (ORDER BY id DESC) AS newer_bytes FROM dead_letters)"
                   " WHERE newer_bytes > ? ORDER BY id DESC LIMIT 1)");
    if (!over.ok()) return fail(over.Error("prepare dead letter limit"));
    sqlite3_bind_int64(over.get(), 1, ByteLimit() / kDeadLetterShare);
    if (sqlite3_step(over.get()) != SQLITE_DONE) return fail(over.Error("dead letter limit"));
    if (absl::StatusOr<int64_t> dropped = CountChanges("dead_letters_dropped"); !dropped.ok()) {
      return fail(dropped.status());
    }
  }
  return Exec("COMMIT");
}

absl::StatusOr<int64_t> Spool::MoveToBack(int64_t seq) {
  std::lock_guard<std::mutex> lock(mu_);
  return RetryWhenFull([&]() -> absl::StatusOr<int64_t> {
    absl::Status status = Exec("BEGIN IMMEDIATE");
    if (!status.ok()) return status;
    auto fail = [this](absl::Status s) {
      Exec("ROLLBACK").IgnoreError();
      return s;
    };
    // AUTOINCREMENT's counter moves on too, so no later message reuses it.
    status = Exec("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'messages'");
    if (!status.ok()) return fail(status);
    int64_t moved_to = 0;
    {
      Statement move(db_,
                     "UPDATE messages SET seq = (SELECT seq FROM sqlite_sequence"
                     " WHERE name = 'messages') WHERE seq = ? RETURNING seq");
      if (!move.ok()) return fail(move.Error("prepare move to back"));
      sqlite3_bind_int64(move.get(), 1, seq);
      if (sqlite3_step(move.get()) != SQLITE_ROW) {
        return fail(absl::NotFoundError(absl::StrCat("spool has no message ", seq)));
      }
      moved_to = sqlite3_column_int64(move.get(), 0);
      if (sqlite3_step(move.get()) != SQLITE_DONE) return fail(move.Error("move to back"));
    }
    if (absl::Status committed = Exec("COMMIT"); !committed.ok()) return fail(committed);
    return moved_to;
  });
}

absl::StatusOr<std::vector<SpooledMessage>> Spool::Oldest(int max_messages,
                                                          int64_t max_payload_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement select(db_,
                   "SELECT seq, message_id, topic, payload, received_at_ms FROM messages"
                   " ORDER BY seq LIMIT ?");
  if (!select.ok()) return select.Error("prepare read");
  sqlite3_bind_int(select.get(), 1, max_messages);
  std::vector<SpooledMessage> messages;
  int64_t bytes = 0;
  int rc;
  while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
    SpooledMessage m;
    m.seq = sqlite3_column_int64(select.get(), 0);
    m.message_id = ColumnString(select.get(), 1);
    m.topic = ColumnString(select.get(), 2);
    m.payload = ColumnString(select.get(), 3);
    m.received_at = absl::FromUnixMillis(sqlite3_column_int64(select.get(), 4));
    // Joined as JSON lines: each message after the first adds a newline.
    const int64_t adds = static_cast<int64_t>(m.payload.size()) + (messages.empty() ? 0 : 1);
    if (!messages.empty() && bytes + adds > max_payload_bytes) break;
    bytes += adds;
    messages.push_back(std::move(m));
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return select.Error("read");
  return messages;
}

absl::Status Spool::Remove(const std::vector<int64_t>& seqs) {
  std::lock_guard<std::mutex> lock(mu_);
  return RetryWhenFull([&] { return RemoveLocked(seqs); });
}

absl::Status Spool::RemoveLocked(const std::vector<int64_t>& seqs) {
  absl::Status status = Exec("BEGIN IMMEDIATE");
  if (!status.ok()) return status;
  Statement remove(db_, "DELETE FROM messages WHERE seq = ?");
  if (!remove.ok()) {
    Exec("ROLLBACK").IgnoreError();
    return remove.Error("prepare remove");
  }
  for (int64_t seq : seqs) {
    sqlite3_bind_int64(remove.get(), 1, seq);
    if (sqlite3_step(remove.get()) != SQLITE_DONE) {
      Exec("ROLLBACK").IgnoreError();
      return remove.Error("remove");
    }
    sqlite3_reset(remove.get());
  }
  return Exec("COMMIT");
}

absl::StatusOr<int64_t> Spool::CountChanges(const char* counter) {
  const int changed = sqlite3_changes(db_);
  if (changed == 0) return 0;
  absl::Status counted = AddToCounter(counter, changed);
  if (!counted.ok()) return counted;
  return changed;
}

absl::Status Spool::AddToCounter(const char* name, int64_t count) {
  Statement update(db_, "UPDATE counters SET value = value + ? WHERE name = ?");
  if (!update.ok()) return update.Error("prepare count");
  sqlite3_bind_int64(update.get(), 1, count);
  update.BindText(2, name);
  if (sqlite3_step(update.get()) != SQLITE_DONE) return update.Error("count");
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Spool::EnforceLimits(absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<int64_t> dropped = RetryWhenFull([&]() -> absl::StatusOr<int64_t> {
    absl::Status status = Exec("BEGIN IMMEDIATE");
    if (!status.ok()) return status;
    absl::StatusOr<int64_t> aged = DropOlderThan(now - options_.max_age);
    absl::StatusOr<int64_t> over = aged.ok() ? DropBeyond(ByteLimit()) : aged;
    if (over.ok()) status = Exec("COMMIT");
    if (!over.ok() || !status.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return over.ok() ? status : over.status();
    }
    return *aged + *over;
  });
  KeepReserve();
  // A full disk's limit is lifted once the disk has room for a quarter of it
  // beside the reserve (an operator made room); a new full disk sets it again.
  if (disk_limit_bytes_ > 0 && FreeDiskBytes() >= kReserveBytes + disk_limit_bytes_ / 4 &&
      SetCounter("disk_limit_bytes", 0).ok()) {
    disk_limit_bytes_ = 0;
  }
  if (!dropped.ok()) return dropped;
  return *dropped + std::exchange(dropped_by_disk_, 0);
}

absl::StatusOr<int64_t> Spool::DropOlderThan(absl::Time oldest_kept) {
  Statement too_old(db_, "DELETE FROM messages WHERE received_at_ms < ?");
  if (!too_old.ok()) return too_old.Error("prepare age limit");
  sqlite3_bind_int64(too_old.get(), 1, Millis(oldest_kept));
  if (sqlite3_step(too_old.get()) != SQLITE_DONE) return too_old.Error("age limit");
  return CountChanges("dropped");
}

absl::StatusOr<int64_t> Spool::DropBeyond(int64_t max_bytes) {
  // Keep the newest messages whose payloads add up to at most max_bytes,
  // less what the dead letters take.
  Statement over(db_,
                 "DELETE FROM messages WHERE seq <= (SELECT seq FROM ("
                 " SELECT seq, SUM(LENGTH(payload)) OVER (ORDER BY seq DESC) AS newer_bytes"
                 " FROM messages) WHERE newer_bytes > ? - (SELECT COALESCE(SUM("
                 "LENGTH(payload) + LENGTH(topic) + LENGTH(reason)), 0) FROM dead_letters)"
                 " ORDER BY seq DESC LIMIT 1)");
  if (!over.ok()) return over.Error("prepare size limit");
  sqlite3_bind_int64(over.get(), 1, max_bytes);
  if (sqlite3_step(over.get()) != SQLITE_DONE) return over.Error("size limit");
  return CountChanges("dropped");
}

absl::StatusOr<SpoolStats> Spool::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  SpoolStats stats;
  Statement select(
      db_,
      "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), MIN(received_at_ms),"
      " (SELECT value FROM counters WHERE name = 'dropped'),"
      " (SELECT COUNT(*) FROM dead_letters),"
      " (SELECT value FROM counters WHERE name = 'dead_letters_dropped') FROM messages");
  if (!select.ok() || sqlite3_step(select.get()) != SQLITE_ROW) return select.Error("stats");
  stats.messages = sqlite3_column_int64(select.get(), 0);
  stats.bytes = sqlite3_column_int64(select.get(), 1);
  stats.oldest = sqlite3_column_type(select.get(), 2) == SQLITE_NULL
                     ? absl::InfiniteFuture()
                     : absl::FromUnixMillis(sqlite3_column_int64(select.get(), 2));
  stats.dropped_total = sqlite3_column_int64(select.get(), 3);
  stats.dead_letters = sqlite3_column_int64(select.get(), 4);
  stats.dead_letters_dropped = sqlite3_column_int64(select.get(), 5);
  return stats;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Spool::DeadLetters(int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement select(db_, "SELECT reason, payload FROM dead_letters ORDER BY id LIMIT ?");
  if (!select.ok()) return select.Error("prepare dead letters");
  sqlite3_bind_int(select.get(), 1, limit);
  std::vector<std::pair<std::string, std::string>> letters;
  while (sqlite3_step(select.get()) == SQLITE_ROW) {
    letters.emplace_back(ColumnString(select.get(), 0), ColumnString(select.get(), 1));
  }
  return letters;
}

}  // namespace matid
