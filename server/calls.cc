#include "server/calls.h"

#include <vector>

#include "common/coding.h"
#include "common/strings.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/proto_buffer_reader.h"

namespace quiver::server {

CallQueue::CallQueue(std::string name, size_t threads, size_t max_queued, std::string flag)
    : name_(std::move(name)), max_queued_(max_queued), flag_(std::move(flag)) {
  workers_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

CallQueue::~CallQueue() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

bool CallQueue::Submit(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (queue_.size() >= max_queued_) return false;
    queue_.push_back(std::move(work));
  }
  wake_.notify_one();
  return true;
}

grpc::Status CallQueue::Busy() const {
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      StrCat("the server is busy: ", max_queued_, " ", name_,
                             " calls are already waiting (", flag_, "); retry later"));
}

size_t CallQueue::queued() const {
  std::lock_guard<std::mutex> l(mu_);
  return queue_.size();
}

void CallQueue::WorkerLoop() {
  for (;;) {
    std::function<void()> work;
    {
      std::unique_lock<std::mutex> l(mu_);
      wake_.wait(l, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // Stopping, and nothing left to run.
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    work();
  }
}

grpc::Status GoneWhileQueued() {
  return grpc::Status(grpc::StatusCode::CANCELLED,
                      "the call was cancelled or passed its deadline while queued");
}

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;

// protobuf's default recursion limit (io::CodedInputStream).
constexpr int kMaxDepth = 100;

class WireWalker {
 public:
  // Walks `bytes` as a `type` at `depth`; the first problem found goes to
  // error_. False when walking must stop.
  bool Walk(const Descriptor* type, std::string_view bytes, const std::string& path, int depth) {
    if (depth > kMaxDepth) {
      error_ = StrCat("the request nests messages deeper than protobuf's limit of ", kMaxDepth,
                      " levels (at ", path,
                      "); a filter takes four levels per $and/$or and may nest at most 16");
      return false;
    }
    google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                              static_cast<int>(bytes.size()));
    std::vector<std::pair<int, int>> counts;  // field number -> occurrences so far
    for (;;) {
      const uint32_t tag = in.ReadTag();
      if (tag == 0)
        return in.ConsumedEntireMessage() ||
               static_cast<size_t>(in.CurrentPosition()) == bytes.size();
      const int number = WireFormatLite::GetTagFieldNumber(tag);
      const FieldDescriptor* field = type->FindFieldByNumber(number);
      if (field == nullptr ||
          WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED ||
          (field->type() != FieldDescriptor::TYPE_STRING &&
           field->type() != FieldDescriptor::TYPE_MESSAGE)) {
        if (!WireFormatLite::SkipField(&in, tag)) return Damaged(path);
        continue;
      }
      uint32_t length = 0;
      std::string value;
      if (!in.ReadVarint32(&length) || !in.ReadString(&value, static_cast<int>(length))) {
        return Damaged(path);
      }
      int index = 0;
      if (field->is_repeated()) {
        auto it = std::find_if(counts.begin(), counts.end(),
                               [number](const auto& c) { return c.first == number; });
        if (it == counts.end()) it = counts.insert(counts.end(), {number, 0});
        index = it->second++;
      }
      std::string child = path.empty() ? field->name() : StrCat(path, ".", field->name());
      if (field->is_map()) {
        child = StrCat(child, "[", MapKey(field->message_type(), value, index), "]");
      } else if (field->is_repeated()) {
        child = StrCat(child, "[", index, "]");
      }
      if (field->type() == FieldDescriptor::TYPE_STRING) {
        if (!IsValidUtf8(value)) {
          error_ = StrCat(child, " is not valid UTF-8");
          return false;
        }
      } else if (!Walk(field->message_type(), value, child, depth + 1)) {
        return false;
      }
    }
  }

  const std::string& error() const { return error_; }

 private:
  bool Damaged(const std::string& path) {
    error_ = path.empty() ? "the request's protobuf encoding is damaged"
                          : StrCat("the request's protobuf encoding is damaged at ", path);
    return false;
  }

  // A map entry's key for a path: quoted when it is a readable string,
  // else the entry's position.
  static std::string MapKey(const Descriptor* entry, std::string_view bytes, int index) {
    const FieldDescriptor* key = entry->FindFieldByNumber(1);
    if (key == nullptr || key->type() != FieldDescriptor::TYPE_STRING) return StrCat(index);
    google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                              static_cast<int>(bytes.size()));
    for (uint32_t tag = in.ReadTag(); tag != 0; tag = in.ReadTag()) {
      if (tag == WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED)) {
        uint32_t length = 0;
        std::string value;
        if (in.ReadVarint32(&length) && in.ReadString(&value, static_cast<int>(length)) &&
            IsValidUtf8(value)) {
          return Quoted(value);
        }
        break;
      }
      if (!WireFormatLite::SkipField(&in, tag)) break;
    }
    return StrCat(index);
  }

  std::string error_;
};

}  // namespace

std::string DiagnoseUnparsable(const Descriptor* type, std::string_view bytes) {
  WireWalker walker;
  if (!walker.Walk(type, bytes, "", 0) && !walker.error().empty()) {
    return StrCat("cannot read the ", type->name(), ": ", walker.error());
  }
  return StrCat("cannot read the ", type->name(), ": it is not valid protobuf");
}

grpc::Status ParseRequest(const grpc::ByteBuffer& raw, google::protobuf::Message* msg) {
  grpc::ByteBuffer copy(raw);  // Shares the slices; the reader consumes its buffer.
  grpc::ProtoBufferReader reader(&copy);
  if (reader.status().ok() && msg->ParseFromZeroCopyStream(&reader)) return grpc::Status::OK;
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (raw.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      DiagnoseUnparsable(msg->GetDescriptor(), bytes));
}

grpc::Status SerializeResponse(const google::protobuf::Message& msg, grpc::ByteBuffer* out) {
  bool own_buffer = false;
  return grpc::SerializationTraits<google::protobuf::Message>::Serialize(msg, out, &own_buffer);
}

}  // namespace quiver::server
