// Request limits checked at the edge. Every one is a named constant here (the
// default) and a quiverd flag; ServerInfo reports the values in force.
#ifndef QUIVER_DB_LIMITS_H_
#define QUIVER_DB_LIMITS_H_

#include <cstdint>

#include "absl/status/status.h"

namespace quiver::db {

struct Limits {
  uint32_t max_batch_records = 1000;      // Records per Upsert request.
  uint32_t max_top_k = 10000;             // Query top_k.
  uint32_t max_id_bytes = 512;            // Record id length (UTF-8 bytes).
  uint32_t max_metadata_bytes = 40960;    // Metadata per record, as compact JSON.
  uint32_t max_text_bytes = 1 << 20;      // Record text.
  uint32_t max_sparse_entries = 2048;     // Non-zero entries of a sparse vector.
  uint32_t max_fetch_ids = 1000;          // Ids per Fetch or Delete request.
  uint32_t max_list_limit = 10000;        // ListIds page size.
  uint32_t max_message_bytes = 64 << 20;  // gRPC request size.
  uint32_t max_document_bytes = 4 << 20;  // Document text (the document path).
  uint32_t max_document_chunks = 4096;    // Chunks one document may be cut into.

  absl::Status Validate() const;
};

}  // namespace quiver::db

#endif  // QUIVER_DB_LIMITS_H_
