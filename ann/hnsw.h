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
// Quantization (HnswOptions::quantization, ann/sq8.h): SQ8 builds and walks
// the graph on int8 codes (a query, or a node being linked, is coded as a
// query against the nodes' codes; two nodes compare their decoded codes);
// binary builds it with the full vectors and walks it on
// sign bits (Hamming distance: too coarse to choose neighbours well).
// Either way the best candidates are rescored with the full vectors, kept
// apart.
//
// Deletion marks a node; it keeps routing searches but is never returned.
// Compact() rebuilds a graph of the live nodes to reclaim memory and recall.
#ifndef QUIVER_ANN_HNSW_H_
#define QUIVER_ANN_HNSW_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "ann/distance.h"
#include "ann/sq8.h"
#include "ann/vector_index.h"

namespace quiver::ann {

struct HnswOptions {
  size_t dimension = 0;  // REQUIRES: >= 1.
  Metric metric = Metric::kCosine;
  uint32_t m = 16;                 // Links per node and level (2m on level 0). REQUIRES: 2..128.
  uint32_t ef_construction = 200;  // Beam width while inserting. REQUIRES: 1..4096.
  uint32_t ef_search = 64;         // Default beam width for Search. REQUIRES: 1..10000.
  uint64_t seed = 0x9e3779b97f4a7c15;  // Level assignment is a hash of (seed, node).
  // kSq8: the graph is built and walked on int8 codes (ann/sq8.h); kBinary:
  // walked on sign bits. The full-precision vectors are kept apart, read to
  // rescore (and, binary, to build).
  Quantization quantization = Quantization::kNone;
  // Quantized search: the walk keeps ceil(top_k * oversampling) candidates,
  // which are rescored with the full vectors (rescore = false: the codes'
  // scores are returned as they are). REQUIRES: 1..100.
  float oversampling = 3.0f;
  bool rescore = true;
  // Quantized only: where the full vectors live. Empty: memory. Else a
  // directory for unlinked, memory-mapped scratch files: the kernel keeps
  // the pages it has room for and reads the rest from disk when rescoring.
  // Not the durable copy (records and checkpoints are); gone at exit.
  std::string full_vectors_dir;
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

  // A new index with only the live nodes, built with `pool` (a quantized one
  // learns its range again from their full vectors). Wanted once at least
  // kCompactMinNodes nodes exist and half of them are deleted, or (quantized)
  // once more than 0.1 % of the values coded were clamped and the graph has
  // doubled since its range was learned.
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
      std::istream& in, const DistanceKernels& kernels = BestKernels(),
      const std::string& full_vectors_dir = "");

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
  size_t VectorBytesPerVector() const override;
  Quantization quantization() const override { return options_.quantization; }
  const HnswOptions& options() const { return options_; }
  // Quantized indexes: the range learned (untrained until the first insert),
  // and how many values fell outside it since.
  Sq8Params sq8_params() const;
  // Binary indexes: the per-dimension thresholds (means) learned from the
  // first batch (empty until the first insert).
  std::vector<float> binary_thresholds() const;
  // Binary thresholds learned from fewer vectors than this are relearned
  // (by Compact) once the graph is four times the sample.
  static constexpr size_t kBinaryFullSample = 1024;
  uint64_t clamped_values() const { return clamped_.load(std::memory_order_relaxed); }
  // Quantized indexes whose full vectors were asked to live on disk but went
  // to memory (the scratch file could not be made): 0 normally.
  size_t full_vector_segments_in_memory() const {
    return full_in_memory_.load(std::memory_order_relaxed);
  }

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
  // What the graph walks: the float vector, or (quantized) the codes and
  // their sum. Distances between such blocks: Dist.
  const std::byte* Code(NodeId id) const;
  // The full-precision vector (normalised for cosine): the same memory as
  // Code for an unquantized index.
  const float* Full(NodeId id) const;
  bool quantized() const { return options_.quantization != Quantization::kNone; }
  bool sq8() const { return options_.quantization == Quantization::kSq8; }
  // Binary graphs are built with the full vectors, walked on the bits.
  bool build_on_full() const { return options_.quantization == Quantization::kBinary; }
  // What the graph is built on: nodes are compared with NodeDist, and with a
  // node being linked (BuildProbe) by BuildDist.
  const std::byte* BuildVec(NodeId id) const {
    return build_on_full() ? reinterpret_cast<const std::byte*>(Full(id)) : Code(id);
  }
  // The distance between two nodes' BuildVec: float vectors, or (SQ8) both
  // nodes' codes decoded with the per-dimension ranges.
  float NodeDist(const std::byte* a, const std::byte* b) const {
    if (!sq8()) {
      return DistFull(reinterpret_cast<const float*>(a), reinterpret_cast<const float*>(b));
    }
    const auto* ca = reinterpret_cast<const uint8_t*>(a);
    const auto* cb = reinterpret_cast<const uint8_t*>(b);
    return options_.metric == Metric::kL2
               ? kernels_.sq8_l2_squared(ca, cb, sq8_.scale.data(), options_.dimension)
               : -kernels_.sq8_dot(ca, cb, sq8_.center.data(), sq8_.scale.data(),
                                   options_.dimension);
  }
  // The first argument of BuildDist for node `id` (a beam search from it):
  // BuildVec, or (SQ8) its query form, written to QueryRoom(buffer), made
  // from its full vector (`from_full`) or from its codes (no full vector
  // read: they may be on disk).
  const std::byte* BuildProbe(NodeId id, bool from_full, std::vector<std::byte>* buffer) const;
  // Sizes `buffer` for a query form (vector_bytes_ with room for an
  // Sq8Query before) and returns where EncodeQueryInto writes it.
  std::byte* QueryRoom(std::vector<std::byte>* buffer) const;
  float BuildDist(const std::byte* probe, const std::byte* b) const {
    return build_on_full()
               ? DistFull(reinterpret_cast<const float*>(probe), reinterpret_cast<const float*>(b))
               : Dist(probe, b);
  }
  // Writes the walked form of node vector `v` (already normalised for
  // cosine) to `out` (vector_bytes_, and for SQ8 the squared norm of what
  // the codes stand for in the 4 bytes before it).
  // REQUIRES: quantized indexes trained.
  // Values clamped are added to *clamped.
  void EncodeInto(const float* v, std::byte* out, uint64_t* clamped) const;
  // Writes the form a search compares with the nodes' (EncodeInto) to
  // `out`: the same for float and binary vectors; for SQ8 query codes, with
  // their Sq8Query in the sizeof(Sq8Query) bytes before `out`.
  void EncodeQueryInto(const float* q, std::byte* out) const;
  // Trains the quantizer from `n` vectors if no one did yet.
  void TrainOnce(const float* vectors, size_t n);
  // Full vectors' bytes per node held in process memory (not mapped).
  size_t FullBytesInMemory() const;
  float DistFull(const float* a, const float* b) const {
    return options_.metric == Metric::kL2 ? kernels_.l2_squared(a, b, options_.dimension)
                                          : -kernels_.dot(a, b, options_.dimension);
  }
  uint64_t LabelOf(NodeId id) const;
  int LevelOf(NodeId id) const;
  NodeState StateOf(NodeId id) const;
  void SetState(NodeId id, NodeState s);
  std::mutex& LockOf(NodeId id) const { return link_locks_[id % kLockStripes]; }

  // a: a query's form (EncodeQueryInto, BuildProbe), b: a node's (Code).
  float Dist(const std::byte* a, const std::byte* b) const {
    if (!quantized()) {
      return DistFull(reinterpret_cast<const float*>(a), reinterpret_cast<const float*>(b));
    }
    return sq8() ? DistSq8(a, b) : DistBinary(a, b);
  }
  float DistBinary(const std::byte* a, const std::byte* b) const {
    return static_cast<float>(kernels_.hamming(reinterpret_cast<const uint64_t*>(a),
                                               reinterpret_cast<const uint64_t*>(b),
                                               (options_.dimension + 63) / 64));
  }
  // q: a query's codes with its Sq8Query before them; code: a node's.
  float DistSq8(const std::byte* q, const std::byte* code) const {
    Sq8Query t;
    std::memcpy(&t, q - sizeof(Sq8Query), sizeof(t));
    const float dot =
        t.offset + t.step * static_cast<float>(kernels_.dot_u8i8(
                                reinterpret_cast<const uint8_t*>(code),
                                reinterpret_cast<const int8_t*>(q), options_.dimension));
    if (options_.metric != Metric::kL2) return -dot;
    float norm2;
    std::memcpy(&norm2, code + kNormOffset, sizeof(norm2));
    return t.norm2 - 2 * dot + norm2;
  }
  int RandomLevel(NodeId id) const;
  uint32_t MaxLinks(int level) const { return level == 0 ? 2 * options_.m : options_.m; }

  // Allocates and fills a node (label, random level, vector); not yet
  // published or linked.
  NodeId NewNode(uint64_t label, std::span<const float> vector);
  void Link(NodeId id);
  // build: `q` and the nodes are compared in the form the graph is built in
  // (BuildVec); else in the form searches walk (Code).
  NodeId GreedyDescend(const std::byte* q, NodeId start, int from_level, int to_level,
                       bool build) const;
  // Beam search of width ef on one level from `entry` (and `second_entry`,
  // when it differs). With `results_must_qualify`, nodes that are deleted or
  // rejected by `filter` are traversed but not kept.
  std::vector<Candidate> SearchLayer(const std::byte* q, NodeId entry, size_t ef, int level,
                                     bool results_must_qualify, const LabelFilter* filter,
                                     NodeId second_entry, bool build) const;
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
  // dimension floats, or (quantized) dimension codes; padded to 64 bytes.
  // An SQ8 node's squared norm (float32) sits in the 4 bytes before its codes:
  // the padding of its level-0 links, which hold an odd number of uint32 and
  // so never fill a multiple of 64 bytes.
  const size_t vector_bytes_;
  static constexpr ptrdiff_t kNormOffset = -4;
  const size_t block_bytes_;  // links0_bytes_ + vector_bytes_: one node on level 0.

  // The quantizer: set once, before the first code is written, under
  // train_mu_; trained_ is released after, and read (acquire) by whoever
  // encodes. Entry-point publication orders it before any search.
  std::mutex train_mu_;
  std::atomic<bool> trained_{false};
  Sq8Params sq8_;
  size_t trained_nodes_ = 0;             // Nodes when trained.
  std::vector<float> binary_threshold_;  // Binary: per dimension.
  size_t trained_sample_ = 0;            // Vectors trained on.
  std::atomic<uint64_t> clamped_{0};
  std::atomic<size_t> full_in_memory_{0};

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
