// `quiver ingest`: sends documents to a collection's document path
// (Rag.UpsertDocument): plain-text and Markdown files, directories searched
// recursively, and JSONL files of {id, text, metadata}; several in flight,
// with a progress bar and a resumable record of what was acknowledged.
#ifndef QUIVER_CLIENT_INGEST_H_
#define QUIVER_CLIENT_INGEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "quiver/v1/rag.grpc.pb.h"

namespace quiver::client {

struct IngestOptions {
  std::string collection;
  std::string ns;
  // Files (.txt, .text, .md, .markdown, .jsonl) and directories. A file's
  // document id is its path relative to the directory named (a file named
  // directly: its path as given when relative, its name when absolute).
  std::vector<std::string> paths;
  int parallel = 4;     // Documents in flight.
  bool resume = false;  // Skip documents a previous run recorded as done.
  // Where acknowledged ids are recorded; removed after a complete run.
  std::string state_path;
  enum class Progress { kAuto, kAlways, kNever } progress = Progress::kAuto;
  absl::Duration rpc_timeout = absl::Seconds(300);
  std::string api_key;  // Sent as metadata api-key when set.
};

struct IngestResult {
  uint64_t documents = 0;  // Sent and acknowledged by this run.
  uint64_t skipped = 0;    // Done by an earlier run (resume).
  uint64_t chunks = 0;
  uint64_t tokens = 0;
  double seconds = 0;
};

// Stops at the first failure, naming the document (and file line for
// JSONL) and the server's reason.
absl::StatusOr<IngestResult> Ingest(v1::Rag::StubInterface* stub, const IngestOptions& options);

}  // namespace quiver::client

#endif  // QUIVER_CLIENT_INGEST_H_
