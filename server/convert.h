// Conversions between the public API (quiver.v1 protos) and domain types, and
// the one place absl::Status becomes grpc::Status.
#ifndef QUIVER_SERVER_CONVERT_H_
#define QUIVER_SERVER_CONVERT_H_

#include "absl/status/statusor.h"
#include "common/json.h"
#include "db/engine.h"
#include "grpcpp/support/status.h"
#include "proto/struct_json.h"
#include "quiver/v1/collections.pb.h"
#include "quiver/v1/common.pb.h"
#include "quiver/v1/search.pb.h"
#include "storage/collection_config.h"
#include "storage/record.h"

namespace quiver::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

// INVALID_ARGUMENT for bad metadata.
absl::StatusOr<storage::Record> RecordFromProto(const v1::Record& proto);
void RecordToProto(const storage::Record& record, v1::Record* proto);
storage::SparseVector SparseFromProto(const v1::SparseValues& proto);
void SparseToProto(const storage::SparseVector& sparse, v1::SparseValues* proto);

// INVALID_ARGUMENT for unknown enum values (the settings themselves are
// checked by CollectionConfig::Validate when the collection is created).
absl::StatusOr<storage::CollectionConfig> ConfigFromProto(const v1::CollectionConfig& proto);
void MemoryToProto(const MemoryAmounts& memory, v1::MemoryUsage* proto);
void CollectionInfoToProto(const db::CollectionInfo& info, v1::CollectionInfo* proto);

}  // namespace quiver::server

#endif  // QUIVER_SERVER_CONVERT_H_
