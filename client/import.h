// `quiver import`: streams a JSONL file of records into a collection in
// batches, several in flight, with a progress bar and a resumable state file.
#ifndef QUIVER_CLIENT_IMPORT_H_
#define QUIVER_CLIENT_IMPORT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "quiver/v1/points.grpc.pb.h"

namespace quiver::client {

struct ImportOptions {
  std::string collection;
  std::string ns;
  std::string path;         // JSONL file; one record object per line.
  int batch_records = 500;  // Records per Upsert request.
  int parallel = 4;         // Upserts in flight.
  bool resume = false;      // Continue from path + ".quiver-import" if present.
  enum class Progress { kAuto, kAlways, kNever } progress = Progress::kAuto;
  absl::Duration rpc_timeout = absl::Seconds(60);
  std::string api_key;  // Sent as metadata api-key when set.
};

struct ImportResult {
  uint64_t records = 0;          // Imported by this run.
  uint64_t skipped_records = 0;  // Already imported by an earlier run (resume).
  double seconds = 0;
};

// On failure the status names the line (and the server's reason); what was
// acknowledged so far is recorded in the state file for --resume.
absl::StatusOr<ImportResult> ImportJsonl(v1::Points::StubInterface* stub,
                                         const ImportOptions& options);

}  // namespace quiver::client

#endif  // QUIVER_CLIENT_IMPORT_H_
