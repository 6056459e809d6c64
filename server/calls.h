// How gRPC calls reach the handlers without a thread each. The services are
// registered with gRPC's callback API as raw (byte buffer) methods: a new
// call costs gRPC no thread, and is queued on a bounded CallQueue whose
// workers parse the request, run the handler and send the answer. A queue
// that is full answers RESOURCE_EXHAUSTED naming its limit; a call that was
// cancelled or ran past its deadline while queued is dropped unrun.
//
// Parsing is ours, not gRPC's, so that a request protobuf cannot parse gets
// INVALID_ARGUMENT saying why (a string field that is not UTF-8, messages
// nested past protobuf's depth limit) instead of gRPC's INTERNAL "".
#ifndef QUIVER_SERVER_CALLS_H_
#define QUIVER_SERVER_CALLS_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "google/protobuf/message.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/proto_buffer_writer.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"

namespace quiver::server {

// A fixed set of worker threads and a bounded FIFO of waiting calls.
// Thread-safe. Uses std::mutex so that ThreadSanitizer sees it.
class CallQueue {
 public:
  // `flag` names the option that sets max_queued, for the busy message.
  // REQUIRES: threads >= 1.
  CallQueue(std::string name, size_t threads, size_t max_queued, std::string flag);
  ~CallQueue();  // Runs what is queued, then joins.

  CallQueue(const CallQueue&) = delete;
  CallQueue& operator=(const CallQueue&) = delete;

  // Queues `work`; false (and `work` dropped) when max_queued calls already
  // wait.
  bool Submit(std::function<void()> work);
  // RESOURCE_EXHAUSTED naming this queue's limit.
  grpc::Status Busy() const;

  const std::string& name() const { return name_; }
  size_t threads() const { return workers_.size(); }
  size_t queued() const;

 private:
  void WorkerLoop();

  const std::string name_;
  const size_t max_queued_;
  const std::string flag_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;  // Guarded by mu_.
  bool stopping_ = false;                    // Guarded by mu_.
  std::vector<std::thread> workers_;         // Constant after construction.
};

// Parses `raw` into `msg`; INVALID_ARGUMENT saying what is wrong when the
// bytes are not a valid `msg` (see DiagnoseUnparsable).
grpc::Status ParseRequest(const grpc::ByteBuffer& raw, google::protobuf::Message* msg);

// Why `bytes` does not parse as a `type`: the first string field that is
// not valid UTF-8 (named by its path, e.g. "records[2].metadata.fields["k"]"),
// messages nested deeper than protobuf's limit, or damaged wire format.
std::string DiagnoseUnparsable(const google::protobuf::Descriptor* type, std::string_view bytes);

// Serializes `msg` into `out`.
grpc::Status SerializeResponse(const google::protobuf::Message& msg, grpc::ByteBuffer* out);

// The status of a call that went away while queued.
grpc::Status GoneWhileQueued();

// A handler's view of a server stream: Write blocks until the message is
// sent (or the call is gone) and says which.
template <class Response>
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual bool Write(const Response& msg) = 0;
};

template <class Request, class Response>
using UnaryHandler =
    std::function<grpc::Status(grpc::CallbackServerContext*, const Request*, Response*)>;
template <class Request, class Response>
using StreamHandler = std::function<grpc::Status(grpc::CallbackServerContext*, const Request*,
                                                 ResponseWriter<Response>*)>;

namespace calls_internal {

// What a worker does first with a queued call: drop it if its client went
// away (or its deadline passed) while it waited, else parse its request.
inline grpc::Status Begin(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer& raw,
                          google::protobuf::Message* request) {
  if (ctx->IsCancelled()) return GoneWhileQueued();
  return ParseRequest(raw, request);
}

}  // namespace calls_internal

// A unary call: queued on `queue` (null: run at once on gRPC's thread, for
// trivial handlers such as health checks).
template <class Request, class Response>
grpc::ServerUnaryReactor* RunUnary(CallQueue* queue, grpc::CallbackServerContext* ctx,
                                   const grpc::ByteBuffer* raw_request,
                                   grpc::ByteBuffer* raw_response,
                                   UnaryHandler<Request, Response> handler) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto work = [ctx, reactor, raw_request, raw_response, handler = std::move(handler)] {
    Request request;
    if (grpc::Status s = calls_internal::Begin(ctx, *raw_request, &request); !s.ok()) {
      return reactor->Finish(s);
    }
    Response response;
    grpc::Status s = handler(ctx, &request, &response);
    if (s.ok()) s = SerializeResponse(response, raw_response);
    reactor->Finish(s);
  };
  if (queue == nullptr) {
    work();
  } else if (!queue->Submit(std::move(work))) {
    reactor->Finish(queue->Busy());
  }
  return reactor;
}

namespace calls_internal {

// A server stream written from a CallQueue worker: each Write starts one
// gRPC write and waits for it to complete, so at most one is in flight and
// a slow reader slows its own generation, no one else's. Deletes itself
// when gRPC is done with the call.
template <class Response>
class StreamReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer>,
                            public ResponseWriter<Response> {
 public:
  bool Write(const Response& msg) override {
    grpc::ByteBuffer buffer;
    if (!SerializeResponse(msg, &buffer).ok()) return false;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (failed_) return false;
      writing_ = true;
    }
    StartWrite(&buffer);  // `buffer` outlives the write: we wait for it.
    std::unique_lock<std::mutex> l(mu_);
    done_.wait(l, [this] { return !writing_; });
    return !failed_;
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> l(mu_);
    writing_ = false;
    if (!ok) failed_ = true;
    done_.notify_all();
  }
  void OnDone() override { delete this; }

 private:
  std::mutex mu_;
  std::condition_variable done_;
  bool writing_ = false;  // Guarded by mu_.
  bool failed_ = false;   // Guarded by mu_.
};

}  // namespace calls_internal

// A server-streaming call: queued on `queue`; the handler writes through
// the ResponseWriter it is given on a worker thread.
template <class Request, class Response>
grpc::ServerWriteReactor<grpc::ByteBuffer>* RunStream(CallQueue* queue,
                                                      grpc::CallbackServerContext* ctx,
                                                      const grpc::ByteBuffer* raw_request,
                                                      StreamHandler<Request, Response> handler) {
  auto* reactor = new calls_internal::StreamReactor<Response>();
  auto work = [ctx, reactor, raw_request, handler = std::move(handler)] {
    Request request;
    if (grpc::Status s = calls_internal::Begin(ctx, *raw_request, &request); !s.ok()) {
      return reactor->Finish(s);
    }
    reactor->Finish(handler(ctx, &request, reactor));
  };
  if (!queue->Submit(std::move(work))) reactor->Finish(queue->Busy());
  return reactor;
}

}  // namespace quiver::server

#endif  // QUIVER_SERVER_CALLS_H_
