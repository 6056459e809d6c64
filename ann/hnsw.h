// Hierarchical navigable small world graph (Malkov & Yashunin, 2016/2018):
// approximate top-k search in about log(n) distance computations.
//
// Layers: every node is on level 0; a node reaches level l with probability
// m^-l (mL = 1/ln m). Search descends greedily from the top entry point, then
// runs a beam search of width ef on level 0. Insertion links a node to the
// neighbours the selection heuristic keeps (m per level, 2m on level 0).
//
// Concurrency: Upsert, Remove and Search may all run at once from any number
// of threads. Neighbour lists are atomics written under a per-node (striped)
// lock and read lock-free with acquire loads, so a reader sees either the old
// or the new id in each slot, never a torn or unpublished node. Node storage
// grows in segments that never move. Save and Compact need writers stopped.
//
// Deletion marks a node; it keeps routing searches but is never returned.
// Compact() rebuilds a graph of the live nodes to reclaim memory and recall.
#ifndef QUIVER_ANN_HNSW_H_
#define QUIVER_ANN_HNSW_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "ann/distance.h"
#include "ann/vector_index.h"

namespace quiver::ann {

struct HnswOptions {
  size_t dimension = 0;  // REQUIRES: >= 1.
  Metric metric = Metric::kCosine;
  uint32_t m = 16;                 // Links per node and level (2m on level 0). REQUIRES: 2..128.
  uint32_t ef_construction = 200;  // Beam width while inserting. REQUIRES: 1..4096.
  uint32_t ef_search = 64;         // Default beam width for Search. REQUIRES: 1..10000.
  uint64_t seed = 0x9e3779b97f4a7c15;  // Level assignment is a hash of (seed, node).
  absl::Status Validate() const;
};

class HnswIndex final : public VectorIndex {
 public:
  // REQUIRES: options.Validate().ok().
  explicit HnswIndex(const HnswOptions& options, const DistanceKernels& kernels = BestKernels());
  ~HnswIndex() override;

  HnswIndex(const HnswIndex&) = delete;
  HnswIndex& operator=(const HnswIndex&) = delete;

  // Inserts a node for `label`; an existing node of the label is deleted
  // (the new vector gets a fresh node, so readers never see a vector change).
  void Upsert(uint64_t label, std::span<const float> vector) override;
  bool Remove(uint64_t label) override;
  bool Contains(uint64_t label) const override;

  // Approximate search with beam width max(params.ef or options.ef_search,
  // top_k). The filter is applied during traversal: rejected and deleted
  // nodes are walked through but never returned.
  std::vector<Hit> Search(std::span<const float> query, const SearchParams& params) const override;
  std::vector<Hit> SearchExact(std::span<const float> query,
                               const SearchParams& params) const override;

  // Inserts many vectors from several threads. vectors: (labels.size(), dim).
  void UpsertBatch(std::span<const uint64_t> labels, const float* vectors,
                   ThreadPool* pool) override;

  // A new index with only the live nodes, built with `pool`. Wanted once at
  // least kCompactMinNodes nodes exist and half of them are deleted.
  // REQUIRES: no concurrent Upsert or Remove.
  static constexpr size_t kCompactMinNodes = 1000;
  // UpsertBatch repairs reachability when the nodes inserted since the last
  // repair reach 1/kRepairFraction of the graph (or the graph is small), so
  // its O(nodes) walk costs a few node visits per insert.
  static constexpr size_t kRepairFraction = 8;
  static constexpr size_t kRepairAlwaysBelow = 20000;
  bool NeedsCompaction() const override;
  // Makes every live node reachable on level 0 from the entry point: the
  // selection heuristic can leave a node with no way in (dot products on
  // data with a dominant direction, concurrent inserts), and then no search
  // finds it. Links each unreachable node from the nearest reachable node
  // with room (else replaces that node's farthest link), repeating until
  // none is left. Returns the nodes relinked. Safe with concurrent writes
  // and searches; UpsertBatch and Load run it (see kRepairFraction).
  size_t RepairReachability();
  // Every live node reachable from the entry point on level 0.
  bool AllLiveReachable() const;
  std::unique_ptr<VectorIndex> Compact(ThreadPool* pool) const override;

  // Checkpoint format: docs/hnsw_format.md. REQUIRES: no concurrent Upsert or
  // Remove (searches may run). Load returns DATA_LOSS for a damaged or
  // truncated file, FAILED_PRECONDITION for an unknown version.
  bool checkpointed() const override { return true; }
  absl::Status Save(std::ostream& out) const override;
  static absl::StatusOr<std::unique_ptr<HnswIndex>> Load(
      std::istream& in, const DistanceKernels& kernels = BestKernels());

  bool concurrent_writes() const override { return true; }
  size_t size() const override;  // Live nodes.
  // One past the largest label of any node, live or deleted (0 when empty).
  uint64_t LabelWatermark() const override;
  // Calls fn(label) for every live node. REQUIRES: no concurrent Upsert/Remove.
  void ForEachLabel(const std::function<void(uint64_t)>& fn) const override;
  size_t node_count() const { return next_node_.load(std::memory_order_acquire); }
  size_t stored_count() const override { return node_count(); }
  size_t deleted_count() const { return deleted_.load(std::memory_order_relaxed); }
  size_t dimension() const override { return options_.dimension; }
  Metric metric() const override { return options_.metric; }
  size_t BytesPerVector() const override;
  const HnswOptions& options() const { return options_; }

  // Tests only: `hook(label, level)` runs on the inserting thread just before
  // a node's links at each level are written (after its search there), so a
  // test can make another insert happen at that moment. Set it before any
  // insert; null clears it.
  void SetLinkHookForTest(std::function<void(uint64_t label, int level)> hook) {
    link_hook_for_test_ = std::move(hook);
  }

  using NodeId = uint32_t;

 private:
  struct Segment;
  struct Candidate {
    float dist;
    NodeId node;
  };
  enum NodeState : uint8_t { kLive = 0, kDeleted = 1, kUnready = 2 };

  // Node storage: segment k holds kFirstSegment << k nodes, so a node's
  // address never changes as the index grows.
  static constexpr size_t kFirstSegmentBits = 6;
  static constexpr size_t kMaxSegments = 32;
  // std::mutex rather than absl::Mutex: Debian ships Abseil without
  // ThreadSanitizer annotations, and TSAN must see every lock.
  static constexpr size_t kLockStripes = 512;

  Segment& SegmentOf(NodeId id, size_t* offset) const;
  // Null while the id's segment is not allocated yet.
  Segment* SegmentIfAllocated(NodeId id, size_t* offset) const;
  void EnsureSegment(NodeId id);
  std::atomic<NodeId>* Links(NodeId id, int level) const;  // [count, ids...]
  const float* Vector(NodeId id) const;
  uint64_t LabelOf(NodeId id) const;
  int LevelOf(NodeId id) const;
  NodeState StateOf(NodeId id) const;
  void SetState(NodeId id, NodeState s);
  std::mutex& LockOf(NodeId id) const { return link_locks_[id % kLockStripes]; }

  float Dist(const float* a, const float* b) const {
    return options_.metric == Metric::kL2 ? kernels_.l2_squared(a, b, options_.dimension)
                                          : -kernels_.dot(a, b, options_.dimension);
  }
  int RandomLevel(NodeId id) const;
  uint32_t MaxLinks(int level) const { return level == 0 ? 2 * options_.m : options_.m; }

  // Allocates and fills a node (label, random level, vector); not yet
  // published or linked.
  NodeId NewNode(uint64_t label, std::span<const float> vector);
  void Link(NodeId id);
  NodeId GreedyDescend(const float* q, NodeId start, int from_level, int to_level) const;
  // Beam search of width ef on one level from `entry` (and `second_entry`,
  // when it differs). With `results_must_qualify`, nodes that are deleted or
  // rejected by `filter` are traversed but not kept.
  std::vector<Candidate> SearchLayer(const float* q, NodeId entry, size_t ef, int level,
                                     bool results_must_qualify, const LabelFilter* filter,
                                     NodeId second_entry) const;
  // The selection heuristic: keeps candidates closer to `base` than to every
  // neighbour kept before them. `candidates` sorted by distance ascending.
  std::vector<NodeId> SelectNeighbours(const std::vector<Candidate>& candidates,
                                       size_t max_links) const;
  void ConnectBack(NodeId neighbour, NodeId id, int level);
  // Adds `add` to node's links at `level` (lock held), pruning by the
  // neighbour heuristic when they exceed MaxLinks(level).
  void MergeLinks(NodeId node, int level, std::span<const NodeId> add);
  // Marks in `reached` every node reachable on level 0 from `from`.
  void MarkReachable(NodeId from, std::vector<uint8_t>* reached) const;
  // Links `node` from the reachable node nearest to it; false if none.
  bool LinkFromReachable(NodeId node, const std::vector<uint8_t>& reached);
  std::vector<Hit> ToHits(std::vector<Candidate> found, size_t top_k) const;

  const HnswOptions options_;
  std::function<void(uint64_t, int)> link_hook_for_test_;  // SetLinkHookForTest.
  const DistanceKernels& kernels_;
  const size_t links0_bytes_;  // (1 + 2m) uint32, padded to 64 bytes.
  const size_t vector_bytes_;  // dimension floats, padded to 64 bytes.
  const size_t block_bytes_;   // links0_bytes_ + vector_bytes_: one node on level 0.

  std::array<std::atomic<Segment*>, kMaxSegments> segments_{};
  std::mutex segment_mu_;  // Serialises segment allocation.
  std::atomic<NodeId> next_node_{0};
  std::atomic<size_t> deleted_{0};
  std::atomic<size_t> inserted_since_repair_{0};
  std::mutex repair_mu_;  // One RepairReachability at a time.

  // Entry point: (node << 8 | level), or kNoEntry. Changed under entry_mu_,
  // which an insert above the top level holds throughout.
  static constexpr uint64_t kNoEntry = ~uint64_t{0};
  std::atomic<uint64_t> entry_{kNoEntry};
  std::mutex entry_mu_;

  mutable std::array<std::mutex, kLockStripes> link_locks_;

  mutable std::mutex label_mu_;
  absl::flat_hash_map<uint64_t, NodeId> node_of_ ABSL_GUARDED_BY(label_mu_);
};

}  // namespace quiver::ann

#endif  // QUIVER_ANN_HNSW_H_
