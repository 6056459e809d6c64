// The server's memory budget: what it holds in memory, by part, counted
// against a total (--memory_budget_mb) and optional per-part limits, so a
// write or a load that would not fit is refused with RESOURCE_EXHAUSTED
// saying what is full instead of meeting the kernel's OOM killer.
//
// The amounts are the owners' estimates of what they hold (vectors, graph
// links, postings, metadata, model weights, KV cache, caches), not a count
// of every allocation: the process also holds gRPC buffers, stacks and the
// allocator's slack, which the operator leaves room for. Thread-safe.
#ifndef QUIVER_COMMON_MEMORY_BUDGET_H_
#define QUIVER_COMMON_MEMORY_BUDGET_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"

namespace quiver {

enum class MemoryPart : int {
  kVectors = 0,  // Full-precision vectors in the indexes.
  kGraph,        // HNSW links and the indexes' label maps.
  kPostings,     // BM25 and sparse postings.
  kMetadata,     // Ids and metadata held for filtering.
  kModels,       // Embedding, reranking and language model weights.
  kKvCache,      // The language model's KV cache.
  kCaches,       // The store's block cache and memtables, the answer cache.
};
inline constexpr size_t kMemoryParts = 7;
using MemoryAmounts = std::array<uint64_t, kMemoryParts>;

// "vectors", "graph", "postings", "metadata", "models", "kv_cache", "caches".
std::string_view MemoryPartName(MemoryPart part);
std::optional<MemoryPart> ParseMemoryPart(std::string_view name);
inline uint64_t& At(MemoryAmounts& a, MemoryPart part) { return a[static_cast<size_t>(part)]; }
inline uint64_t At(const MemoryAmounts& a, MemoryPart part) { return a[static_cast<size_t>(part)]; }
uint64_t Sum(const MemoryAmounts& a);
// "vectors 12.5 MB, graph 3.1 MB" (parts that are zero left out; "nothing").
std::string DescribeMemory(const MemoryAmounts& a);

class MemoryReservation;

class MemoryBudget {
 public:
  // total_bytes 0: no total limit (usage is still counted); a part limit of
  // 0: that part is bounded by the total only. `flag` names the setting in
  // messages ("--memory_budget_mb").
  explicit MemoryBudget(uint64_t total_bytes = 0, MemoryAmounts part_limits = {},
                        std::string flag = "--memory_budget_mb");
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Counts `bytes` as held until the reservation goes (or is kept) when
  // they fit under the total and each part's limit; otherwise
  // RESOURCE_EXHAUSTED: "<what> needs 12.0 MB (vectors 8.0 MB, ...) but the
  // memory budget of 64.0 MB (--memory_budget_mb) has 3.2 MB left: vectors
  // 40.1 MB, ... are held".
  absl::StatusOr<MemoryReservation> Reserve(const MemoryAmounts& bytes, std::string_view what);
  // The same check without counting anything.
  absl::Status CheckFits(const MemoryAmounts& bytes, std::string_view what) const;
  // Counts memory already taken (or given back) whether or not it fits:
  // moves the count for each part from `from` to `to`.
  void Adjust(const MemoryAmounts& from, const MemoryAmounts& to);
  void Add(const MemoryAmounts& bytes) { Adjust({}, bytes); }
  void Release(const MemoryAmounts& bytes) { Adjust(bytes, {}); }

  uint64_t total_limit() const { return total_limit_; }
  const MemoryAmounts& part_limits() const { return part_limits_; }
  MemoryAmounts used() const;

 private:
  absl::Status CheckLocked(const MemoryAmounts& bytes, std::string_view what) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const uint64_t total_limit_;
  const MemoryAmounts part_limits_;
  const std::string flag_;
  mutable Mutex mu_;
  MemoryAmounts used_ ABSL_GUARDED_BY(mu_){};
};

// Memory counted in a budget for as long as the reservation lives; Keep()
// leaves it counted for good (the holder then gives it back with Release).
class MemoryReservation {
 public:
  MemoryReservation() = default;
  MemoryReservation(MemoryReservation&& other) noexcept { *this = std::move(other); }
  MemoryReservation& operator=(MemoryReservation&& other) noexcept;
  ~MemoryReservation() { Reset(); }
  const MemoryAmounts& bytes() const { return bytes_; }
  void Keep() { budget_ = nullptr; }
  void Reset();

 private:
  friend class MemoryBudget;
  MemoryReservation(MemoryBudget* budget, const MemoryAmounts& bytes)
      : budget_(budget), bytes_(bytes) {}
  MemoryBudget* budget_ = nullptr;
  MemoryAmounts bytes_{};
};

// Per-part limits from "vectors=4096,postings=512" (MiB per part);
// INVALID_ARGUMENT naming an unknown part or a bad number.
absl::StatusOr<MemoryAmounts> ParseMemoryPartLimits(std::string_view spec);

// Memory this process may use: the cgroup's limit when one is set, else
// the machine's physical memory; 0 when neither can be read.
uint64_t AvailableMemoryBytes();
// Resident memory of this process now (/proc/self/statm); 0 when unknown.
uint64_t ResidentBytes();

}  // namespace quiver

#endif  // QUIVER_COMMON_MEMORY_BUDGET_H_
