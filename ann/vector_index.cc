#include "ann/vector_index.h"

#include "ann/hnsw.h"
#include "common/status_macros.h"

namespace quiver::ann {

void VectorIndex::UpsertBatch(std::span<const uint64_t> labels, const float* vectors,
                              ThreadPool* /*pool*/) {
  const size_t dim = dimension();
  for (size_t i = 0; i < labels.size(); ++i) {
    Upsert(labels[i], std::span<const float>(vectors + i * dim, dim));
  }
}

absl::Status VectorIndex::Save(std::ostream& /*out*/) const {
  return absl::UnimplementedError("this index kind keeps no checkpoint");
}

std::unique_ptr<VectorIndex> VectorIndex::Compact(ThreadPool* /*pool*/) const {
  // NeedsCompaction() is false for every index without its own Compact.
  QUIVER_CHECK(false);
  return nullptr;
}

absl::StatusOr<std::unique_ptr<VectorIndex>> LoadIndexCheckpoint(
    std::istream& in, const std::string& full_vectors_dir) {
  // HNSW is the only kind with a checkpoint format (docs/hnsw_format.md).
  ASSIGN_OR_RETURN(std::unique_ptr<HnswIndex> index,
                   HnswIndex::Load(in, BestKernels(), full_vectors_dir));
  return std::unique_ptr<VectorIndex>(std::move(index));
}

}  // namespace quiver::ann
