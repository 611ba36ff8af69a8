// A bidirectional gRPC stream (callback API) that answers every request with
// exactly one response, written in request order: matid.v1's ClassifyStream
// and the Open Inference Protocol's ModelStreamInfer. Requests are handled
// as they arrive, up to `max_in_flight` at once; reading pauses beyond
// that, which pushes back on the client through flow control. A request
// stays in flight until its response is written, not only answered, so a
// client that never reads stops being read from, rather than having its
// answers pile up in the server (issue 26 item 3). Requests arrive as wire
// bytes and are parsed only when their parsed form fits the budget
// (request_parse.h); one that does not is answered through Refuse() and the
// stream goes on. The stream finishes OK once the client has half-closed
// and everything read is answered.
//
// A subclass implements Handle() and Refuse() and calls Begin() at the end
// of its constructor. The reactor deletes itself in OnDone, which gRPC calls only
// after Finish, and Finish waits for every response, so no `respond` can
// reach a deleted reactor.
// Thread-safety: `respond` may be called from any thread.
#ifndef MATID_SERVER_API_ORDERED_STREAM_REACTOR_H_
#define MATID_SERVER_API_ORDERED_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "server/api/request_parse.h"

namespace matid {

template <typename Request, typename Response>
class OrderedStreamReactor : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // Answers one request; call it exactly once.
  using Respond = std::function<void(Response)>;

  void OnReadDone(bool ok) override {
    if (!ok) {  // client half-closed, or the call is gone
      bool finish;
      {
        std::lock_guard<std::mutex> lock(mu_);
        reads_done_ = true;
        finish = ReadyToFinishLocked();
      }
      if (finish) this->Finish(grpc::Status::OK);
      return;
    }
    auto slot = std::make_shared<Slot>();
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.push_back(slot);
      ++in_flight_;
    }
    Respond respond = [this, slot](Response response) { OnResponse(slot, std::move(response)); };
    if (absl::Status parsed = ParseWithinBudget(wire_, max_parsed_bytes_, &request_); parsed.ok()) {
      Handle(request_, std::move(respond));
    } else {
      Refuse(parsed, std::move(respond));
    }
    // wire_ and request_ are free again: Handle copied what it needed.
    wire_.Clear();
    std::lock_guard<std::mutex> lock(mu_);
    if (in_flight_ < max_in_flight_) {
      this->StartRead(&wire_);
    } else {
      read_paused_ = true;
    }
  }

  void OnWriteDone(bool ok) override {
    bool finish;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) write_failed_ = true;
      OneWrittenLocked();
      WriteNextLocked();
      finish = ReadyToFinishLocked();
    }
    if (finish) this->Finish(grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 protected:
  // `max_parsed_bytes`: the most memory one request may take parsed.
  OrderedStreamReactor(int max_in_flight, int64_t max_parsed_bytes)
      : max_in_flight_(max_in_flight), max_parsed_bytes_(max_parsed_bytes) {}
  ~OrderedStreamReactor() override = default;

  // Starts reading, or (`refusal` not OK) finishes the stream with it. Call
  // once, last thing in the subclass's constructor.
  void Begin(const grpc::Status& refusal) {
    if (!refusal.ok()) {
      this->Finish(refusal);
      return;
    }
    this->StartRead(&wire_);
  }

  // Handles one request; `request` is valid only during the call.
  virtual void Handle(const Request& request, Respond respond) = 0;
  // Answers a request that could not be parsed within the budget (`status`
  // says why: RESOURCE_EXHAUSTED or INVALID_ARGUMENT).
  virtual void Refuse(const absl::Status& status, Respond respond) = 0;

 private:
  struct Slot {
    Response response;
    bool done = false;
  };

  void OnResponse(const std::shared_ptr<Slot>& slot, Response response) {
    bool finish;
    {
      std::lock_guard<std::mutex> lock(mu_);
      slot->response = std::move(response);
      slot->done = true;
      WriteNextLocked();
      finish = ReadyToFinishLocked();
    }
    if (finish) this->Finish(grpc::Status::OK);
  }

  // Writes the oldest response if it is ready and no write is outstanding.
  // mu_ must be held.
  void WriteNextLocked() {
    while (!writing_ && !pending_.empty() && pending_.front()->done) {
      std::shared_ptr<Slot> next = std::move(pending_.front());
      pending_.pop_front();
      if (write_failed_) {  // the client is gone: nothing to write to
        OneWrittenLocked();
        continue;
      }
      writing_ = true;
      outgoing_ = SerializeToByteBuffer(next->response);
      this->StartWrite(&outgoing_);
    }
  }

  // One response is written (or dropped, the client being gone): its request
  // leaves the in-flight count, and reading resumes if it had paused.
  // mu_ must be held.
  void OneWrittenLocked() {
    --in_flight_;
    if (read_paused_ && in_flight_ < max_in_flight_) {
      read_paused_ = false;
      this->StartRead(&wire_);
    }
  }

  // True once, when everything read has been answered. mu_ must be held.
  bool ReadyToFinishLocked() {
    if (finished_ || !reads_done_ || in_flight_ > 0 || writing_ || !pending_.empty()) {
      return false;
    }
    finished_ = true;
    return true;
  }

  const int max_in_flight_;
  const int64_t max_parsed_bytes_;
  grpc::ByteBuffer wire_;  // the read buffer; one read outstanding at a time
  Request request_;        // wire_ parsed, while it is handled

  std::mutex mu_;
  std::deque<std::shared_ptr<Slot>> pending_;  // guarded by mu_, request order
  grpc::ByteBuffer outgoing_;                  // guarded by mu_
  int in_flight_ = 0;                          // read, response not yet written; guarded by mu_
  bool read_paused_ = false;                   // guarded by mu_
  bool reads_done_ = false;                    // guarded by mu_
  bool writing_ = false;                       // guarded by mu_
  bool write_failed_ = false;                  // guarded by mu_
  bool finished_ = false;                      // guarded by mu_
};

}  // namespace matid

#endif  // MATID_SERVER_API_ORDERED_STREAM_REACTOR_H_
