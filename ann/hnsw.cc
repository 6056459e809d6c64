#include "ann/hnsw.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <istream>
#include <limits>
#include <ostream>
#include <queue>

#include "ann/hnsw_internal.h"
#include "common/coding.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/thread_pool.h"

namespace quiver::ann {

using NodeId = HnswIndex::NodeId;

namespace {

constexpr size_t kAlign = 64;
size_t RoundUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Per-thread visited marks: an epoch per node, so clearing is O(1).
struct VisitedSet {
  std::vector<uint32_t> marks;
  uint32_t epoch = 0;

  void Reset(size_t n) {
    if (marks.size() < n) marks.resize(std::max(n, marks.size() * 2), 0);
    if (++epoch == 0) {
      std::fill(marks.begin(), marks.end(), 0);
      epoch = 1;
    }
  }
  // True when `id` was not visited yet (and marks it).
  bool Visit(NodeId id) {
    // Nodes inserted after Reset may be reached through fresh links.
    if (id >= marks.size()) marks.resize(std::max<size_t>(id + 1, marks.size() * 2), 0);
    if (marks[id] == epoch) return false;
    marks[id] = epoch;
    return true;
  }
};

VisitedSet& ThreadVisited() {
  thread_local VisitedSet visited;
  return visited;
}

struct Closer {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.dist > b.dist;  // Min-heap on distance.
  }
};
struct Farther {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.dist < b.dist;  // Max-heap on distance.
  }
};

}  // namespace

namespace hnsw_internal {

FullVectors::FullVectors(size_t bytes, const std::string& dir) : bytes_(bytes) {
  if (!dir.empty()) {
    // An unlinked file: nothing to clean up, even after kill -9.
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
      std::string path = dir + "/full-vectors-XXXXXX";
      fd = ::mkstemp(path.data());
      if (fd >= 0) ::unlink(path.c_str());
    }
    // The space is reserved up front: a write to a mapping the disk cannot
    // back would be SIGBUS, not an error.
    if (fd >= 0 && ::posix_fallocate(fd, 0, static_cast<off_t>(bytes)) == 0) {
      void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (p != MAP_FAILED) {
        ::madvise(p, bytes, MADV_RANDOM);  // Rescoring reads a few vectors anywhere.
        data_ = static_cast<float*>(p);
        mapped_ = true;
      }
    }
    if (fd >= 0) ::close(fd);
    if (mapped_) return;
  }
  data_ = static_cast<float*>(std::aligned_alloc(kAlign, RoundUp(bytes)));
  QUIVER_CHECK(data_ != nullptr);
}

FullVectors::~FullVectors() {
  if (mapped_) {
    ::munmap(data_, bytes_);
  } else {
    std::free(data_);
  }
}

}  // namespace hnsw_internal

absl::Status HnswOptions::Validate() const {
  if (dimension < 1) return absl::InvalidArgumentError("hnsw: dimension must be >= 1");
  if (m < 2 || m > 128)
    return absl::InvalidArgumentError(StrCat("hnsw: m is ", m, "; it must be in 2..128"));
  if (ef_construction < 1 || ef_construction > 4096) {
    return absl::InvalidArgumentError("hnsw: ef_construction must be in 1..4096");
  }
  if (ef_search < 1 || ef_search > 10000) {
    return absl::InvalidArgumentError("hnsw: ef_search must be in 1..10000");
  }
  if (!KnownQuantization(quantization)) {
    return absl::InvalidArgumentError("hnsw: unknown quantization");
  }
  if (!(oversampling >= 1.0f && oversampling <= 100.0f)) {
    return absl::InvalidArgumentError(
        StrCat("hnsw: oversampling is ", oversampling, "; it must be in 1..100"));
  }
  if (quantization != Quantization::kNone && dimension > 32768) {
    return absl::InvalidArgumentError("hnsw: quantized vectors have at most 32,768 dimensions");
  }
  return absl::OkStatus();
}

HnswIndex::HnswIndex(const HnswOptions& options, const DistanceKernels& kernels)
    : options_(options),
      kernels_(kernels),
      links0_bytes_(RoundUp((1 + 2 * size_t{options.m}) * sizeof(NodeId))),
      vector_bytes_(RoundUp(options.quantization == Quantization::kNone
                                ? options.dimension * sizeof(float)
                            : options.quantization == Quantization::kSq8
                                ? options.dimension
                                : (options.dimension + 63) / 64 * sizeof(uint64_t))),
      block_bytes_(links0_bytes_ + vector_bytes_) {
  QUIVER_CHECK(options.Validate().ok());
  QUIVER_CHECK(links0_bytes_ - (1 + 2 * size_t{options.m}) * sizeof(NodeId) >= sizeof(int32_t));
}

HnswIndex::~HnswIndex() {
  for (auto& s : segments_) delete s.load(std::memory_order_relaxed);
}

HnswIndex::Segment* HnswIndex::SegmentIfAllocated(NodeId id, size_t* offset) const {
  // Segment k starts at F * (2^k - 1) where F = 1 << kFirstSegmentBits.
  const uint64_t scaled = (uint64_t{id} >> kFirstSegmentBits) + 1;
  const int k = 63 - __builtin_clzll(scaled);
  *offset = id - (((uint64_t{1} << k) - 1) << kFirstSegmentBits);
  return segments_[k].load(std::memory_order_acquire);
}

HnswIndex::Segment& HnswIndex::SegmentOf(NodeId id, size_t* offset) const {
  return *SegmentIfAllocated(id, offset);
}

void HnswIndex::EnsureSegment(NodeId id) {
  const uint64_t scaled = (uint64_t{id} >> kFirstSegmentBits) + 1;
  const int k = 63 - __builtin_clzll(scaled);
  QUIVER_CHECK(k < static_cast<int>(kMaxSegments));
  if (segments_[k].load(std::memory_order_acquire) != nullptr) return;
  std::lock_guard<std::mutex> lock(segment_mu_);
  if (segments_[k].load(std::memory_order_relaxed) != nullptr) return;
  auto seg = std::make_unique<Segment>();
  seg->capacity = size_t{1} << (k + kFirstSegmentBits);
  void* raw = std::aligned_alloc(kAlign, seg->capacity * block_bytes_);
  QUIVER_CHECK(raw != nullptr);
  std::memset(raw, 0, seg->capacity * block_bytes_);
  seg->blocks.reset(static_cast<std::byte*>(raw));
  seg->labels = std::make_unique<uint64_t[]>(seg->capacity);
  seg->levels = std::make_unique<uint8_t[]>(seg->capacity);
  seg->states = std::make_unique<std::atomic<uint8_t>[]>(seg->capacity);
  for (size_t i = 0; i < seg->capacity; ++i)
    seg->states[i].store(kUnready, std::memory_order_relaxed);
  seg->upper = std::make_unique<std::unique_ptr<std::atomic<NodeId>[]>[]>(seg->capacity);
  if (quantized()) {
    seg->full = std::make_unique<hnsw_internal::FullVectors>(
        seg->capacity * options_.dimension * sizeof(float), options_.full_vectors_dir);
    if (!options_.full_vectors_dir.empty() && !seg->full->mapped()) {
      full_in_memory_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  segments_[k].store(seg.release(), std::memory_order_release);
}

std::atomic<NodeId>* HnswIndex::Links(NodeId id, int level) const {
  size_t off;
  Segment& s = SegmentOf(id, &off);
  if (level == 0) {
    return reinterpret_cast<std::atomic<NodeId>*>(s.blocks.get() + off * block_bytes_);
  }
  return s.upper[off].get() + (level - 1) * (1 + size_t{options_.m});
}

const std::byte* HnswIndex::Code(NodeId id) const {
  size_t off;
  Segment& s = SegmentOf(id, &off);
  return s.blocks.get() + off * block_bytes_ + links0_bytes_;
}

const float* HnswIndex::Full(NodeId id) const {
  size_t off;
  Segment& s = SegmentOf(id, &off);
  if (!quantized()) {
    return reinterpret_cast<const float*>(s.blocks.get() + off * block_bytes_ + links0_bytes_);
  }
  return s.full->data() + off * options_.dimension;
}

std::vector<float> HnswIndex::binary_thresholds() const {
  if (sq8() || !trained_.load(std::memory_order_acquire)) return {};
  return binary_threshold_;
}

Sq8Params HnswIndex::sq8_params() const {
  if (!trained_.load(std::memory_order_acquire)) return {};
  return sq8_;
}

void HnswIndex::EncodeInto(const float* v, std::byte* out, uint64_t* clamped) const {
  if (!quantized()) {
    std::memcpy(out, v, options_.dimension * sizeof(float));
    return;
  }
  if (!sq8()) {
    EncodeBinary(v, binary_threshold_.data(), options_.dimension, reinterpret_cast<uint64_t*>(out));
    return;
  }
  const float norm2 = sq8_.Encode(v, reinterpret_cast<uint8_t*>(out), clamped);
  std::memcpy(out + kNormOffset, &norm2, sizeof(norm2));
}

void HnswIndex::EncodeQueryInto(const float* q, std::byte* out) const {
  if (!sq8()) {
    uint64_t ignored = 0;
    EncodeInto(q, out, &ignored);
    return;
  }
  const Sq8Query t = sq8_.EncodeQuery(q, reinterpret_cast<int8_t*>(out));
  std::memcpy(out - sizeof(t), &t, sizeof(t));
}

std::byte* HnswIndex::QueryRoom(std::vector<std::byte>* buffer) const {
  buffer->resize(kAlign + vector_bytes_);
  return buffer->data() + kAlign;  // Room for the Sq8Query before.
}

const std::byte* HnswIndex::BuildProbe(NodeId id, bool from_full,
                                       std::vector<std::byte>* buffer) const {
  if (!sq8()) return BuildVec(id);
  std::byte* const out = QueryRoom(buffer);
  if (from_full) {
    EncodeQueryInto(Full(id), out);
    return out;
  }
  const Sq8Query t = sq8_.EncodeQueryFromCodes(reinterpret_cast<const uint8_t*>(Code(id)),
                                               reinterpret_cast<int8_t*>(out));
  std::memcpy(out - sizeof(t), &t, sizeof(t));
  return out;
}

void HnswIndex::TrainOnce(const float* vectors, size_t n) {
  if (!quantized() || n == 0 || trained_.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(train_mu_);
  if (trained_.load(std::memory_order_relaxed)) return;
  // Binary: up to 1,024 vectors spread over the batch. SQ8 learns a range
  // per dimension and clamps each one's extreme 0.01 %: up to 8,192 vectors
  // (0.02 % of values beyond such a range are expected, under the 0.1 %
  // that asks for retraining), fewer where they exceed 4M values (16 MB),
  // a few milliseconds to sort.
  const size_t dim = options_.dimension;
  const size_t take =
      std::min<size_t>(n, sq8() ? std::clamp<size_t>((size_t{4} << 20) / dim, 256, 8192) : 1024);
  std::vector<float> values;
  values.reserve(take * dim);
  for (size_t i = 0; i < take; ++i) {
    const float* v = vectors + (i * n / take) * dim;
    const size_t at = values.size();
    values.insert(values.end(), v, v + dim);
    if (options_.metric == Metric::kCosine) NormalizeInPlace({values.data() + at, dim});
  }
  if (sq8()) {
    sq8_ = Sq8Params::Train(values.data(), take, dim);
  } else {  // Binary: each dimension's mean splits its values.
    std::vector<double> sum(dim, 0.0);
    for (size_t i = 0; i < take; ++i) {
      for (size_t d = 0; d < dim; ++d) sum[d] += values[i * dim + d];
    }
    binary_threshold_.resize(dim);
    for (size_t d = 0; d < dim; ++d) binary_threshold_[d] = static_cast<float>(sum[d] / take);
  }
  trained_nodes_ = node_count();
  trained_sample_ = take;
  trained_.store(true, std::memory_order_release);
}

uint64_t HnswIndex::LabelOf(NodeId id) const {
  size_t off;
  return SegmentOf(id, &off).labels[off];
}

int HnswIndex::LevelOf(NodeId id) const {
  size_t off;
  return SegmentOf(id, &off).levels[off];
}

HnswIndex::NodeState HnswIndex::StateOf(NodeId id) const {
  // NewNode takes an id before it allocates the id's segment, so a scan up
  // to next_node_ can meet a node whose segment does not exist yet: that
  // node is not ready. (Scans check the state before anything else.)
  size_t off;
  const Segment* seg = SegmentIfAllocated(id, &off);
  if (seg == nullptr) return kUnready;
  return static_cast<NodeState>(seg->states[off].load(std::memory_order_acquire));
}

void HnswIndex::SetState(NodeId id, NodeState state) {
  size_t off;
  SegmentOf(id, &off).states[off].store(state, std::memory_order_release);
}

int HnswIndex::RandomLevel(NodeId id) const {
  // Uniform in (0, 1] from a hash of (seed, node): deterministic per node.
  const uint64_t h = SplitMix64(options_.seed ^ SplitMix64(id));
  const double u = (static_cast<double>(h >> 11) + 1.0) * 0x1.0p-53;
  const double level = -std::log(u) / std::log(static_cast<double>(options_.m));
  return static_cast<int>(std::min(level, 30.0));
}

NodeId HnswIndex::NewNode(uint64_t label, std::span<const float> vector) {
  const NodeId id = next_node_.fetch_add(1, std::memory_order_acq_rel);
  QUIVER_CHECK(id != std::numeric_limits<NodeId>::max());
  EnsureSegment(id);
  const int level = RandomLevel(id);
  size_t off;
  Segment& s = SegmentOf(id, &off);
  s.labels[off] = label;
  s.levels[off] = static_cast<uint8_t>(level);
  std::byte* code = s.blocks.get() + off * block_bytes_ + links0_bytes_;
  float* dst =
      quantized() ? s.full->data() + off * options_.dimension : reinterpret_cast<float*>(code);
  std::memcpy(dst, vector.data(), options_.dimension * sizeof(float));
  if (options_.metric == Metric::kCosine)
    NormalizeInPlace(std::span<float>(dst, options_.dimension));
  if (quantized()) {
    uint64_t clamped = 0;
    EncodeInto(dst, code, &clamped);
    if (clamped != 0) clamped_.fetch_add(clamped, std::memory_order_relaxed);
  }
  if (level > 0) {
    const size_t slots = static_cast<size_t>(level) * (1 + options_.m);
    s.upper[off] = std::make_unique<std::atomic<NodeId>[]>(slots);
    for (size_t i = 0; i < slots; ++i) s.upper[off][i].store(0, std::memory_order_relaxed);
  }
  return id;
}

void HnswIndex::Upsert(uint64_t label, std::span<const float> vector) {
  QUIVER_CHECK(vector.size() == options_.dimension);
  TrainOnce(vector.data(), 1);
  const NodeId id = NewNode(label, vector);
  {
    std::lock_guard<std::mutex> lock(label_mu_);
    auto [it, inserted] = node_of_.try_emplace(label, id);
    if (!inserted) {
      SetState(it->second, kDeleted);
      deleted_.fetch_add(1, std::memory_order_relaxed);
      it->second = id;
    }
    SetState(id, kLive);
  }
  Link(id);
}

void HnswIndex::Link(NodeId id) {
  const int level = LevelOf(id);
  thread_local std::vector<std::byte> probe;  // One per call site: they nest.
  const std::byte* q = BuildProbe(id, true, &probe);
  uint64_t ep = entry_.load(std::memory_order_acquire);
  // A node above the top level (or the first node) holds the entry lock
  // throughout, so the entry point moves only after it is fully linked.
  std::unique_lock<std::mutex> top_lock;
  if (ep == kNoEntry || level > static_cast<int>(ep & 0xff)) {
    top_lock = std::unique_lock<std::mutex>(entry_mu_);
    ep = entry_.load(std::memory_order_acquire);
    if (ep == kNoEntry) {
      entry_.store(uint64_t{id} << 8 | static_cast<uint64_t>(level), std::memory_order_release);
      return;
    }
    if (level <= static_cast<int>(ep & 0xff)) top_lock.unlock();  // Raised meanwhile.
  }
  const int top = static_cast<int>(ep & 0xff);
  NodeId cur = GreedyDescend(q, static_cast<NodeId>(ep >> 8), top, level, true);
  for (int l = std::min(level, top); l >= 0; --l) {
    auto found = SearchLayer(q, cur, options_.ef_construction, l, false, nullptr, cur, true);
    cur = found.front().node;
    const auto chosen = SelectNeighbours(found, options_.m);
    if (link_hook_for_test_) link_hook_for_test_(LabelOf(id), l);
    {
      // Merged, not overwritten: a node inserted meanwhile may already have
      // linked back to this one at this level (it reached this node through
      // a level above, whose links are set), and that link may be its only
      // way in (BatchUpsertLeavesEveryNodeReachable).
      std::lock_guard<std::mutex> node_lock(LockOf(id));
      MergeLinks(id, l, chosen);
    }
    for (NodeId n : chosen) ConnectBack(n, id, l);
  }
  if (top_lock.owns_lock()) {
    entry_.store(uint64_t{id} << 8 | static_cast<uint64_t>(level), std::memory_order_release);
  }
}

void HnswIndex::ConnectBack(NodeId neighbour, NodeId id, int level) {
  if (neighbour == id) return;
  std::lock_guard<std::mutex> lock(LockOf(neighbour));
  MergeLinks(neighbour, level, {&id, 1});
}

void HnswIndex::MergeLinks(NodeId node, int level, std::span<const NodeId> add) {
  const uint32_t max_links = MaxLinks(level);
  std::atomic<NodeId>* links = Links(node, level);
  const uint32_t count = links[0].load(std::memory_order_relaxed);
  uint32_t n = count;
  auto linked = [&](NodeId a) {
    for (uint32_t i = 0; i < n; ++i) {
      if (links[1 + i].load(std::memory_order_relaxed) == a) return true;
    }
    return a == node;
  };
  // While there is room, new links go after the ones readers may be
  // walking, and are published together.
  size_t next = 0;
  for (; next < add.size(); ++next) {
    if (linked(add[next])) continue;
    if (n == max_links) break;
    links[1 + n++].store(add[next], std::memory_order_release);
  }
  if (next == add.size()) {
    if (n != count) links[0].store(n, std::memory_order_release);
    return;
  }
  // Full: keep the best max_links of the links and the rest of `add`.
  const std::byte* base = BuildVec(node);
  std::vector<Candidate> candidates;
  candidates.reserve(n + add.size() - next);
  for (uint32_t i = 0; i < n; ++i) {
    const NodeId l = links[1 + i].load(std::memory_order_relaxed);
    candidates.push_back({NodeDist(base, BuildVec(l)), l});
  }
  for (; next < add.size(); ++next) {
    if (!linked(add[next])) {
      candidates.push_back({NodeDist(base, BuildVec(add[next])), add[next]});
    }
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.dist < b.dist; });
  const auto kept = SelectNeighbours(candidates, max_links);
  for (size_t i = 0; i < kept.size(); ++i) links[1 + i].store(kept[i], std::memory_order_release);
  links[0].store(static_cast<NodeId>(kept.size()), std::memory_order_release);
}

std::vector<NodeId> HnswIndex::SelectNeighbours(const std::vector<Candidate>& candidates,
                                                size_t max_links) const {
  std::vector<NodeId> kept;
  kept.reserve(max_links);
  for (const Candidate& c : candidates) {
    if (kept.size() >= max_links) break;
    const std::byte* v = BuildVec(c.node);
    bool diverse = true;
    for (NodeId k : kept) {
      if (NodeDist(v, BuildVec(k)) < c.dist) {
        diverse = false;
        break;
      }
    }
    if (diverse) kept.push_back(c.node);
  }
  return kept;
}

namespace {
// Distances computed by graph walks on this thread (Search reports the
// difference through SearchParams::distances).
thread_local uint64_t t_distances = 0;
}  // namespace

NodeId HnswIndex::GreedyDescend(const std::byte* q, NodeId start, int from_level, int to_level,
                                bool build) const {
  auto dist = [&](NodeId n) { return build ? BuildDist(q, BuildVec(n)) : Dist(q, Code(n)); };
  NodeId cur = start;
  float cur_dist = dist(cur);
  for (int l = from_level; l > to_level; --l) {
    bool moved = true;
    while (moved) {
      moved = false;
      const std::atomic<NodeId>* links = Links(cur, l);
      const uint32_t count = links[0].load(std::memory_order_acquire);
      for (uint32_t i = 0; i < count; ++i) {
        const NodeId n = links[1 + i].load(std::memory_order_acquire);
        const float d = dist(n);
        ++t_distances;
        if (d < cur_dist) {
          cur_dist = d;
          cur = n;
          moved = true;
        }
      }
    }
  }
  return cur;
}

std::vector<HnswIndex::Candidate> HnswIndex::SearchLayer(const std::byte* q, NodeId entry,
                                                         size_t ef, int level,
                                                         bool results_must_qualify,
                                                         const LabelFilter* filter,
                                                         NodeId second_entry, bool build) const {
  VisitedSet& visited = ThreadVisited();
  visited.Reset(next_node_.load(std::memory_order_acquire));
  // Only pay for state and filter checks when something can be rejected.
  const bool check =
      results_must_qualify && (filter != nullptr || deleted_.load(std::memory_order_relaxed) > 0);
  auto qualifies = [&](NodeId n) {
    if (!check) return true;
    if (StateOf(n) != kLive) return false;
    return filter == nullptr || (*filter)(LabelOf(n));
  };
  // Heaps in per-thread buffers: no allocation per search once warm.
  thread_local std::vector<Candidate> candidates;  // Min-heap on distance.
  thread_local std::vector<Candidate> results;     // Max-heap on distance.
  candidates.clear();
  results.clear();
  const size_t dim = options_.dimension;
  const bool l2 = options_.metric == Metric::kL2;
  // What is compared: float vectors (unquantized, or a binary graph being
  // built), SQ8 codes or binary codes.
  const bool on_full = !quantized() || (build && build_on_full());
  const bool codes_sq8 = !on_full && sq8();
  const auto dot = kernels_.dot;
  const auto l2sq = kernels_.l2_squared;
  const auto* qf = reinterpret_cast<const float*>(q);
  auto dist = [&](const std::byte* v) {
    if (on_full) {
      const auto* vf = reinterpret_cast<const float*>(v);
      return l2 ? l2sq(qf, vf, dim) : -dot(qf, vf, dim);
    }
    return codes_sq8 ? DistSq8(q, v) : DistBinary(q, v);
  };
  auto vec = [&](NodeId n) {
    return on_full ? reinterpret_cast<const std::byte*>(Full(n)) : Code(n);
  };
  const size_t vec_bytes = on_full ? dim * sizeof(float) : vector_bytes_;

  const float d0 = dist(vec(entry));
  ++t_distances;
  visited.Visit(entry);
  candidates.push_back({d0, entry});
  float bound = std::numeric_limits<float>::infinity();
  if (qualifies(entry)) {
    results.push_back({d0, entry});
    bound = d0;
  }
  const Closer closer;
  const Farther farther;
  if (second_entry != entry && visited.Visit(second_entry)) {
    const float d = dist(vec(second_entry));
    ++t_distances;
    candidates.push_back({d, second_entry});
    std::push_heap(candidates.begin(), candidates.end(), closer);
    if (qualifies(second_entry)) {
      results.push_back({d, second_entry});
      std::push_heap(results.begin(), results.end(), farther);
      bound = results.front().dist;
    }
  }
  while (!candidates.empty()) {
    const Candidate c = candidates.front();
    if (c.dist > bound && results.size() >= ef) break;
    std::pop_heap(candidates.begin(), candidates.end(), closer);
    candidates.pop_back();
    const std::atomic<NodeId>* links = Links(c.node, level);
    const uint32_t count = links[0].load(std::memory_order_acquire);
    NodeId fresh_ids[256];
    const std::byte* fresh_vecs[256];
    uint32_t fresh = 0;
    for (uint32_t i = 0; i < count; ++i) {
      const NodeId n = links[1 + i].load(std::memory_order_acquire);
      if (visited.Visit(n)) {
        const std::byte* v = vec(n);
        // Fetch the vector early: the distance computation below stalls on
        // memory otherwise (~15% QPS on 128-d, measured by hnsw_bench).
        __builtin_prefetch(v);
        fresh_ids[fresh] = n;
        fresh_vecs[fresh++] = v;
      }
    }
    // Pull in whole vectors two ahead of the one being compared (the loop
    // above fetched only first cache lines): on 384-d vectors one ahead is
    // too late to hide memory latency.
    auto prefetch_rest = [&](uint32_t k) {
      const char* p = reinterpret_cast<const char*>(fresh_vecs[k]);
      for (size_t line = 64; line < vec_bytes; line += 64) __builtin_prefetch(p + line);
    };
    if (fresh > 0) prefetch_rest(0);
    if (fresh > 1) prefetch_rest(1);
    t_distances += fresh;
    for (uint32_t i = 0; i < fresh; ++i) {
      if (i + 2 < fresh) prefetch_rest(i + 2);
      const float d = dist(fresh_vecs[i]);
      if (results.size() < ef || d < bound) {
        const NodeId n = fresh_ids[i];
        candidates.push_back({d, n});
        std::push_heap(candidates.begin(), candidates.end(), closer);
        if (qualifies(n)) {
          results.push_back({d, n});
          std::push_heap(results.begin(), results.end(), farther);
          if (results.size() > ef) {
            std::pop_heap(results.begin(), results.end(), farther);
            results.pop_back();
          }
          bound = results.front().dist;
        }
      }
    }
  }
  std::vector<Candidate> out(results.begin(), results.end());
  std::sort(out.begin(), out.end(),
            [](const Candidate& a, const Candidate& b) { return a.dist < b.dist; });
  return out;
}

std::vector<Hit> HnswIndex::ToHits(std::vector<Candidate> found, size_t top_k) const {
  std::vector<Hit> hits;
  hits.reserve(std::min(top_k, found.size()));
  for (const Candidate& c : found) hits.push_back({LabelOf(c.node), -c.dist});
  std::sort(hits.begin(), hits.end(), HitBefore);
  if (hits.size() > top_k) hits.resize(top_k);
  return hits;
}

std::vector<Hit> HnswIndex::Search(std::span<const float> query, const SearchParams& params) const {
  QUIVER_CHECK(query.size() == options_.dimension);
  QUIVER_CHECK(params.top_k >= 1);
  const uint64_t ep = entry_.load(std::memory_order_acquire);
  if (ep == kNoEntry) return {};
  std::vector<float> q(query.begin(), query.end());
  if (options_.metric == Metric::kCosine) NormalizeInPlace(q);
  // Quantized: the walk keeps top_k * oversampling candidates by their
  // codes' distances; the full vectors then decide.
  const bool rescore = quantized() && options_.rescore;
  const size_t keep =
      rescore
          ? std::max(params.top_k, static_cast<size_t>(std::ceil(static_cast<double>(params.top_k) *
                                                                 options_.oversampling)))
          : params.top_k;
  const size_t ef = std::max(params.ef != 0 ? params.ef : options_.ef_search, keep);
  // The walked form of the query (the entry point was published after the
  // quantizer was trained).
  thread_local std::vector<std::byte> buffer;
  std::byte* const walked = QueryRoom(&buffer);
  EncodeQueryInto(q.data(), walked);
  const uint64_t distances_before = t_distances;
  const NodeId start =
      GreedyDescend(walked, static_cast<NodeId>(ep >> 8), static_cast<int>(ep & 0xff), 0, false);
  // Seeded at the entry point as well: every live node is reachable from it
  // (RepairReachability), so a beam as wide as the graph finds them all.
  std::vector<Candidate> found =
      SearchLayer(walked, start, ef, 0, true, params.filter, static_cast<NodeId>(ep >> 8), false);
  if (rescore) {
    if (found.size() > keep) found.resize(keep);  // Nearest first.
    for (Candidate& c : found) c.dist = DistFull(q.data(), Full(c.node));
    t_distances += found.size();
  }
  std::vector<Hit> hits = ToHits(std::move(found), params.top_k);
  if (params.distances != nullptr) *params.distances += t_distances - distances_before;
  return hits;
}

std::vector<Hit> HnswIndex::SearchExact(std::span<const float> query,
                                        const SearchParams& params) const {
  QUIVER_CHECK(query.size() == options_.dimension);
  std::vector<float> q(query.begin(), query.end());
  if (options_.metric == Metric::kCosine) NormalizeInPlace(q);
  const NodeId n = next_node_.load(std::memory_order_acquire);
  auto scan = [&](NodeId begin, NodeId end, TopK* top) {
    for (NodeId id = begin; id < end; ++id) {
      if (StateOf(id) != kLive) continue;
      const uint64_t label = LabelOf(id);
      if (params.filter != nullptr && !(*params.filter)(label)) continue;
      top->Push(label, -DistFull(q.data(), Full(id)));
    }
  };
  const size_t tasks =
      params.pool == nullptr || n < 4096 ? 1 : std::min<size_t>(params.pool->size() + 1, n / 2048);
  if (tasks <= 1) {
    TopK top(params.top_k);
    scan(0, n, &top);
    return top.Take();
  }
  std::vector<std::vector<Hit>> partial(tasks);
  const NodeId per = static_cast<NodeId>((n + tasks - 1) / tasks);
  params.pool->ParallelFor(tasks, [&](size_t t) {
    TopK top(params.top_k);
    const NodeId begin = static_cast<NodeId>(t) * per;
    scan(begin, std::min<NodeId>(n, begin + per), &top);
    partial[t] = top.Take();
  });
  TopK merged(params.top_k);
  for (const auto& hits : partial) {
    for (const Hit& h : hits) merged.Push(h.label, h.score);
  }
  return merged.Take();
}

bool HnswIndex::Remove(uint64_t label) {
  std::lock_guard<std::mutex> lock(label_mu_);
  auto it = node_of_.find(label);
  if (it == node_of_.end()) return false;
  SetState(it->second, kDeleted);
  deleted_.fetch_add(1, std::memory_order_relaxed);
  node_of_.erase(it);
  return true;
}

bool HnswIndex::Contains(uint64_t label) const {
  std::lock_guard<std::mutex> lock(label_mu_);
  return node_of_.contains(label);
}

size_t HnswIndex::size() const {
  std::lock_guard<std::mutex> lock(label_mu_);
  return node_of_.size();
}

void HnswIndex::ForEachLabel(const std::function<void(uint64_t)>& fn) const {
  const NodeId n = next_node_.load(std::memory_order_acquire);
  for (NodeId id = 0; id < n; ++id) {
    if (StateOf(id) == kLive) fn(LabelOf(id));
  }
}

uint64_t HnswIndex::LabelWatermark() const {
  uint64_t watermark = 0;
  const NodeId n = next_node_.load(std::memory_order_acquire);
  for (NodeId id = 0; id < n; ++id) {
    if (StateOf(id) != kUnready) watermark = std::max(watermark, LabelOf(id) + 1);
  }
  return watermark;
}

size_t HnswIndex::BytesPerVector() const {
  // Level-0 block, per-node label/level/state/upper pointer, the label map
  // entry (key, value, control byte), and upper levels: a node has on
  // average 1/(m-1) of them, each (1 + m) uint32.
  const double upper = (1.0 + options_.m) * sizeof(NodeId) / (options_.m - 1.0);
  return block_bytes_ + sizeof(uint64_t) + 2 + sizeof(void*) + sizeof(uint64_t) + sizeof(NodeId) +
         1 + static_cast<size_t>(upper + 0.5) + FullBytesInMemory();
}

size_t HnswIndex::VectorBytesPerVector() const { return vector_bytes_ + FullBytesInMemory(); }

size_t HnswIndex::FullBytesInMemory() const {
  if (!quantized()) return 0;  // The block holds the vector.
  if (!options_.full_vectors_dir.empty() && full_in_memory_.load(std::memory_order_relaxed) == 0) {
    return 0;  // Mapped from disk: page cache, not the process's memory.
  }
  return options_.dimension * sizeof(float);
}

void HnswIndex::UpsertBatch(std::span<const uint64_t> labels, const float* vectors,
                            ThreadPool* pool) {
  const size_t n = labels.size();
  const size_t dim = options_.dimension;
  TrainOnce(vectors, n);  // From the whole batch, not its first vector.
  auto insert_range = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      Upsert(labels[i], std::span<const float>(vectors + i * dim, dim));
    }
  };
  // After the inserts: repair reachability when enough have accumulated.
  struct RepairAfter {
    HnswIndex* index;
    size_t n;
    ~RepairAfter() {
      const size_t since = index->inserted_since_repair_.fetch_add(n) + n;
      const size_t size = index->size();
      if (size < kRepairAlwaysBelow || since * kRepairFraction >= size) {
        index->RepairReachability();
      }
    }
  } repair_after{this, n};
  constexpr size_t kChunk = 16;
  if (pool == nullptr || n < 2 * kChunk) {
    insert_range(0, n);
    return;
  }
  // Into a small graph, insert a first slice alone so early inserts find a
  // connected graph; then small interleaved chunks keep the threads busy to
  // the end (a batch into a big graph is parallel from its first vector:
  // batches of 500 through gRPC spent an eighth of their time serial).
  const size_t head = node_count() < 1024 ? std::min<size_t>(n, 64) : 0;
  insert_range(0, head);
  const size_t chunks = (n - head + kChunk - 1) / kChunk;
  pool->ParallelFor(chunks, [&](size_t c) {
    const size_t begin = head + c * kChunk;
    insert_range(begin, std::min(n, begin + kChunk));
  });
}

void HnswIndex::MarkReachable(NodeId from, std::vector<uint8_t>* reached) const {
  std::vector<NodeId> stack = {from};
  (*reached)[from] = 1;
  while (!stack.empty()) {
    const NodeId node = stack.back();
    stack.pop_back();
    const std::atomic<NodeId>* links = Links(node, 0);
    const uint32_t count = links[0].load(std::memory_order_acquire);
    for (uint32_t i = 0; i < count; ++i) {
      const NodeId n = links[1 + i].load(std::memory_order_acquire);
      if (n < reached->size() && !(*reached)[n]) {
        (*reached)[n] = 1;
        stack.push_back(n);
      }
    }
  }
}

bool HnswIndex::AllLiveReachable() const {
  const uint64_t ep = entry_.load(std::memory_order_acquire);
  if (ep == kNoEntry) return true;
  const NodeId n = next_node_.load(std::memory_order_acquire);
  std::vector<uint8_t> reached(n, 0);
  MarkReachable(static_cast<NodeId>(ep >> 8), &reached);
  for (NodeId id = 0; id < n; ++id) {
    if (!reached[id] && StateOf(id) == kLive) return false;
  }
  return true;
}

bool HnswIndex::LinkFromReachable(NodeId node, const std::vector<uint8_t>& reached) {
  const uint64_t ep = entry_.load(std::memory_order_acquire);
  thread_local std::vector<std::byte> probe;
  const std::byte* q = BuildProbe(node, false, &probe);
  // The nearest nodes to `node` a level-0 walk from the entry point finds:
  // every one of them is reachable.
  const size_t ef = std::max<size_t>(options_.ef_construction, 2 * options_.m);
  std::vector<Candidate> found = SearchLayer(q, static_cast<NodeId>(ep >> 8), ef, 0, false, nullptr,
                                             static_cast<NodeId>(ep >> 8), true);
  NodeId full_nearest = node;
  for (const Candidate& c : found) {
    if (c.node == node || c.node >= reached.size() || !reached[c.node]) continue;
    std::lock_guard<std::mutex> lock(LockOf(c.node));
    if (Links(c.node, 0)[0].load(std::memory_order_relaxed) < MaxLinks(0)) {
      MergeLinks(c.node, 0, {&node, 1});  // Room: appended, nothing pruned.
      return true;
    }
    if (full_nearest == node) full_nearest = c.node;
  }
  if (full_nearest == node) return false;
  // Every candidate is full: the nearest gives up its farthest link (the
  // next round finds that node again if this cut its only way in).
  std::lock_guard<std::mutex> lock(LockOf(full_nearest));
  std::atomic<NodeId>* links = Links(full_nearest, 0);
  const uint32_t count = links[0].load(std::memory_order_relaxed);
  const std::byte* base = BuildVec(full_nearest);
  uint32_t worst = 0;
  float worst_dist = -std::numeric_limits<float>::infinity();
  for (uint32_t i = 0; i < count; ++i) {
    const float d = NodeDist(base, BuildVec(links[1 + i].load(std::memory_order_relaxed)));
    if (d > worst_dist) {
      worst_dist = d;
      worst = i;
    }
  }
  links[1 + worst].store(node, std::memory_order_release);
  return true;
}

size_t HnswIndex::RepairReachability() {
  std::unique_lock<std::mutex> one(repair_mu_, std::try_to_lock);
  if (!one.owns_lock()) return 0;  // Another thread is repairing.
  inserted_since_repair_.store(0, std::memory_order_relaxed);
  size_t relinked = 0;
  for (int round = 0; round < 8; ++round) {
    const uint64_t ep = entry_.load(std::memory_order_acquire);
    if (ep == kNoEntry) return relinked;
    const NodeId n = next_node_.load(std::memory_order_acquire);
    std::vector<uint8_t> reached(n, 0);
    MarkReachable(static_cast<NodeId>(ep >> 8), &reached);
    size_t missing = 0;
    for (NodeId id = 0; id < n; ++id) {
      if (reached[id] || StateOf(id) != kLive) continue;
      ++missing;
      if (!LinkFromReachable(id, reached)) continue;
      ++relinked;
      MarkReachable(id, &reached);  // And whatever it leads to.
    }
    if (missing == 0) break;
  }
  return relinked;
}

bool HnswIndex::NeedsCompaction() const {
  const size_t nodes = node_count();
  if (nodes >= kCompactMinNodes && deleted_count() * 2 >= nodes) return true;
  // A quantizer trained on little data (a first single insert) or on data
  // that has since drifted clamps values: retrain (Compact learns the range
  // again from every full vector) once more than 0.1 % of the values coded
  // were clamped and the graph has doubled since training, so the rebuilds'
  // cost per insert stays constant.
  if (!quantized() || !trained_.load(std::memory_order_acquire)) return false;
  // Binary thresholds learned from a small first batch: relearned from the
  // whole graph once it is four times that batch (a few rebuilds at most).
  if (!sq8()) {
    return trained_sample_ < kBinaryFullSample &&
           nodes >= 4 * std::max<size_t>(trained_sample_, 32);
  }
  return nodes >= 2 * std::max<size_t>(trained_nodes_, 32) &&
         clamped_values() * 1000 > uint64_t{nodes} * options_.dimension;
}

std::unique_ptr<VectorIndex> HnswIndex::Compact(ThreadPool* pool) const {
  auto fresh = std::make_unique<HnswIndex>(options_, kernels_);
  std::vector<uint64_t> labels;
  std::vector<float> vectors;
  const NodeId n = next_node_.load(std::memory_order_acquire);
  for (NodeId id = 0; id < n; ++id) {
    if (StateOf(id) != kLive) continue;
    labels.push_back(LabelOf(id));
    const float* v = Full(id);
    vectors.insert(vectors.end(), v, v + options_.dimension);
  }
  fresh->UpsertBatch(labels, vectors.data(), pool);
  return fresh;
}

}  // namespace quiver::ann
