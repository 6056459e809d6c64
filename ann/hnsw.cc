#include "ann/hnsw.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <istream>
#include <limits>
#include <ostream>
#include <queue>

#include "common/coding.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/thread_pool.h"

namespace quiver::ann {

using NodeId = HnswIndex::NodeId;

namespace {

constexpr size_t kAlign = 64;
size_t RoundUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

struct AlignedFree {
  void operator()(std::byte* p) const { std::free(p); }
};

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

// One segment of node storage. Arrays are sized `capacity` and allocated
// once; entries are written before the node is published.
struct HnswIndex::Segment {
  size_t capacity = 0;
  std::unique_ptr<std::byte, AlignedFree> blocks;  // (capacity, block_bytes_)
  std::unique_ptr<uint64_t[]> labels;
  std::unique_ptr<uint8_t[]> levels;
  std::unique_ptr<std::atomic<uint8_t>[]> states;
  // Levels 1..level of a node: level x (1 + m) slots, [count, ids...] each.
  std::unique_ptr<std::unique_ptr<std::atomic<NodeId>[]>[]> upper;
};

absl::Status HnswOptions::Validate() const {
  if (dimension < 1) return absl::InvalidArgumentError("hnsw: dimension must be >= 1");
  if (m < 2 || m > 128) return absl::InvalidArgumentError(StrCat("hnsw: m is ", m, "; it must be in 2..128"));
  if (ef_construction < 1 || ef_construction > 4096) {
    return absl::InvalidArgumentError("hnsw: ef_construction must be in 1..4096");
  }
  if (ef_search < 1 || ef_search > 10000) {
    return absl::InvalidArgumentError("hnsw: ef_search must be in 1..10000");
  }
  return absl::OkStatus();
}

HnswIndex::HnswIndex(const HnswOptions& options, const DistanceKernels& kernels)
    : options_(options),
      kernels_(kernels),
      links0_bytes_(RoundUp((1 + 2 * size_t{options.m}) * sizeof(NodeId))),
      vector_bytes_(RoundUp(options.dimension * sizeof(float))),
      block_bytes_(links0_bytes_ + vector_bytes_) {
  QUIVER_CHECK(options.Validate().ok());
}

HnswIndex::~HnswIndex() {
  for (auto& s : segments_) delete s.load(std::memory_order_relaxed);
}

HnswIndex::Segment& HnswIndex::SegmentOf(NodeId id, size_t* offset) const {
  // Segment k starts at F * (2^k - 1) where F = 1 << kFirstSegmentBits.
  const uint64_t scaled = (uint64_t{id} >> kFirstSegmentBits) + 1;
  const int k = 63 - __builtin_clzll(scaled);
  *offset = id - (((uint64_t{1} << k) - 1) << kFirstSegmentBits);
  return *segments_[k].load(std::memory_order_acquire);
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
  for (size_t i = 0; i < seg->capacity; ++i) seg->states[i].store(kUnready, std::memory_order_relaxed);
  seg->upper = std::make_unique<std::unique_ptr<std::atomic<NodeId>[]>[]>(seg->capacity);
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

const float* HnswIndex::Vector(NodeId id) const {
  size_t off;
  Segment& s = SegmentOf(id, &off);
  return reinterpret_cast<const float*>(s.blocks.get() + off * block_bytes_ + links0_bytes_);
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
  size_t off;
  return static_cast<NodeState>(SegmentOf(id, &off).states[off].load(std::memory_order_acquire));
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
  float* dst = reinterpret_cast<float*>(s.blocks.get() + off * block_bytes_ + links0_bytes_);
  std::memcpy(dst, vector.data(), options_.dimension * sizeof(float));
  if (options_.metric == Metric::kCosine) NormalizeInPlace(std::span<float>(dst, options_.dimension));
  if (level > 0) {
    const size_t slots = static_cast<size_t>(level) * (1 + options_.m);
    s.upper[off] = std::make_unique<std::atomic<NodeId>[]>(slots);
    for (size_t i = 0; i < slots; ++i) s.upper[off][i].store(0, std::memory_order_relaxed);
  }
  return id;
}

void HnswIndex::Upsert(uint64_t label, std::span<const float> vector) {
  QUIVER_CHECK(vector.size() == options_.dimension);
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
  const float* q = Vector(id);
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
  NodeId cur = GreedyDescend(q, static_cast<NodeId>(ep >> 8), top, level);
  for (int l = std::min(level, top); l >= 0; --l) {
    auto found = SearchLayer(q, cur, options_.ef_construction, l, false, nullptr);
    cur = found.front().node;
    const auto chosen = SelectNeighbours(found, options_.m);
    std::atomic<NodeId>* mine = Links(id, l);
    {
      std::lock_guard<std::mutex> node_lock(LockOf(id));
      for (size_t i = 0; i < chosen.size(); ++i) mine[1 + i].store(chosen[i], std::memory_order_release);
      mine[0].store(static_cast<NodeId>(chosen.size()), std::memory_order_release);
    }
    for (NodeId n : chosen) ConnectBack(n, id, l);
  }
  if (top_lock.owns_lock()) {
    entry_.store(uint64_t{id} << 8 | static_cast<uint64_t>(level), std::memory_order_release);
  }
}

void HnswIndex::ConnectBack(NodeId neighbour, NodeId id, int level) {
  if (neighbour == id) return;
  const uint32_t max_links = MaxLinks(level);
  std::atomic<NodeId>* links = Links(neighbour, level);
  std::lock_guard<std::mutex> lock(LockOf(neighbour));
  const uint32_t count = links[0].load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < count; ++i) {
    if (links[1 + i].load(std::memory_order_relaxed) == id) return;
  }
  if (count < max_links) {
    links[1 + count].store(id, std::memory_order_release);
    links[0].store(count + 1, std::memory_order_release);
    return;
  }
  // Full: keep the best max_links of the old neighbours and the new node.
  const float* base = Vector(neighbour);
  std::vector<Candidate> candidates;
  candidates.reserve(count + 1);
  candidates.push_back({Dist(base, Vector(id)), id});
  for (uint32_t i = 0; i < count; ++i) {
    const NodeId n = links[1 + i].load(std::memory_order_relaxed);
    candidates.push_back({Dist(base, Vector(n)), n});
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
    const float* v = Vector(c.node);
    bool diverse = true;
    for (NodeId k : kept) {
      if (Dist(v, Vector(k)) < c.dist) {
        diverse = false;
        break;
      }
    }
    if (diverse) kept.push_back(c.node);
  }
  return kept;
}

NodeId HnswIndex::GreedyDescend(const float* q, NodeId start, int from_level, int to_level) const {
  NodeId cur = start;
  float cur_dist = Dist(q, Vector(cur));
  for (int l = from_level; l > to_level; --l) {
    bool moved = true;
    while (moved) {
      moved = false;
      const std::atomic<NodeId>* links = Links(cur, l);
      const uint32_t count = links[0].load(std::memory_order_acquire);
      for (uint32_t i = 0; i < count; ++i) {
        const NodeId n = links[1 + i].load(std::memory_order_acquire);
        const float d = Dist(q, Vector(n));
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

std::vector<HnswIndex::Candidate> HnswIndex::SearchLayer(const float* q, NodeId entry, size_t ef,
                                                         int level, bool results_must_qualify,
                                                         const LabelFilter* filter) const {
  VisitedSet& visited = ThreadVisited();
  visited.Reset(next_node_.load(std::memory_order_acquire));
  // Only pay for state and filter checks when something can be rejected.
  const bool check = results_must_qualify &&
                     (filter != nullptr || deleted_.load(std::memory_order_relaxed) > 0);
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
  const auto dot = kernels_.dot;
  const auto l2sq = kernels_.l2_squared;
  auto dist = [&](const float* v) { return l2 ? l2sq(q, v, dim) : -dot(q, v, dim); };

  const float d0 = dist(Vector(entry));
  visited.Visit(entry);
  candidates.push_back({d0, entry});
  float bound = std::numeric_limits<float>::infinity();
  if (qualifies(entry)) {
    results.push_back({d0, entry});
    bound = d0;
  }
  const Closer closer;
  const Farther farther;
  while (!candidates.empty()) {
    const Candidate c = candidates.front();
    if (c.dist > bound && results.size() >= ef) break;
    std::pop_heap(candidates.begin(), candidates.end(), closer);
    candidates.pop_back();
    const std::atomic<NodeId>* links = Links(c.node, level);
    const uint32_t count = links[0].load(std::memory_order_acquire);
    NodeId fresh_ids[256];
    const float* fresh_vecs[256];
    uint32_t fresh = 0;
    for (uint32_t i = 0; i < count; ++i) {
      const NodeId n = links[1 + i].load(std::memory_order_acquire);
      if (visited.Visit(n)) {
        const float* v = Vector(n);
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
      for (size_t line = 64; line < vector_bytes_; line += 64) __builtin_prefetch(p + line);
    };
    if (fresh > 0) prefetch_rest(0);
    if (fresh > 1) prefetch_rest(1);
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
  const size_t ef = std::max(params.ef != 0 ? params.ef : options_.ef_search, params.top_k);
  const NodeId start = GreedyDescend(q.data(), static_cast<NodeId>(ep >> 8),
                                     static_cast<int>(ep & 0xff), 0);
  return ToHits(SearchLayer(q.data(), start, ef, 0, true, params.filter), params.top_k);
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
      top->Push(label, -Dist(q.data(), Vector(id)));
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
  return block_bytes_ + sizeof(uint64_t) + 2 + sizeof(void*) + sizeof(uint64_t) +
         sizeof(NodeId) + 1 + static_cast<size_t>(upper + 0.5);
}

void HnswIndex::UpsertBatch(std::span<const uint64_t> labels, const float* vectors,
                            ThreadPool* pool) {
  const size_t n = labels.size();
  const size_t dim = options_.dimension;
  auto insert_range = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      Upsert(labels[i], std::span<const float>(vectors + i * dim, dim));
    }
  };
  if (pool == nullptr || n < 256) {
    insert_range(0, n);
    return;
  }
  // Insert a first slice alone so early inserts find a connected graph;
  // then small interleaved chunks keep the threads busy to the end.
  const size_t head = std::min<size_t>(n, 64);
  insert_range(0, head);
  constexpr size_t kChunk = 64;
  const size_t chunks = (n - head + kChunk - 1) / kChunk;
  pool->ParallelFor(chunks, [&](size_t c) {
    const size_t begin = head + c * kChunk;
    insert_range(begin, std::min(n, begin + kChunk));
  });
}

std::unique_ptr<HnswIndex> HnswIndex::Compact(ThreadPool* pool) const {
  auto fresh = std::make_unique<HnswIndex>(options_, kernels_);
  std::vector<uint64_t> labels;
  std::vector<float> vectors;
  const NodeId n = next_node_.load(std::memory_order_acquire);
  for (NodeId id = 0; id < n; ++id) {
    if (StateOf(id) != kLive) continue;
    labels.push_back(LabelOf(id));
    const float* v = Vector(id);
    vectors.insert(vectors.end(), v, v + options_.dimension);
  }
  fresh->UpsertBatch(labels, vectors.data(), pool);
  return fresh;
}

// ---- Checkpoints (docs/hnsw_format.md) --------------------------------------

namespace {

constexpr char kMagic[8] = {'Q', 'V', 'H', 'N', 'S', 'W', '\r', '\n'};
constexpr uint32_t kFormatVersion = 1;

struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint32_t dimension;
  uint32_t metric;
  uint32_t m;
  uint32_t ef_construction;
  uint32_t ef_search;
  uint32_t entry_node;
  int32_t entry_level;  // -1: empty graph.
  uint32_t body_crc;    // CRC-32C of everything after the header.
  uint64_t seed;
  uint64_t node_count;
  uint32_t header_crc;  // CRC-32C of this header with header_crc = 0.
  uint32_t reserved;
};
static_assert(sizeof(FileHeader) == 72, "checkpoint header is 72 bytes");

// Writes through a CRC; the body is streamed, never held whole in memory.
class CrcWriter {
 public:
  explicit CrcWriter(std::ostream& out) : out_(out) {}
  void Write(const void* p, size_t n) {
    const std::string_view bytes(static_cast<const char*>(p), n);
    crc_ = Crc32cExtend(crc_, bytes);
    out_.write(bytes.data(), static_cast<std::streamsize>(n));
  }
  template <typename T>
  void Put(const T& v) {
    Write(&v, sizeof(v));
  }
  uint32_t crc() const { return crc_; }

 private:
  std::ostream& out_;
  uint32_t crc_ = 0;
};

class CrcReader {
 public:
  explicit CrcReader(std::istream& in) : in_(in) {}
  bool Read(void* p, size_t n) {
    if (!in_.read(static_cast<char*>(p), static_cast<std::streamsize>(n))) return false;
    crc_ = Crc32cExtend(crc_, std::string_view(static_cast<const char*>(p), n));
    return true;
  }
  template <typename T>
  bool Get(T* v) {
    return Read(v, sizeof(*v));
  }
  uint32_t crc() const { return crc_; }

 private:
  std::istream& in_;
  uint32_t crc_ = 0;
};

}  // namespace

absl::Status HnswIndex::Save(std::ostream& out) const {
  FileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kFormatVersion;
  h.header_bytes = sizeof(FileHeader);
  h.dimension = static_cast<uint32_t>(options_.dimension);
  h.metric = static_cast<uint32_t>(options_.metric);
  h.m = options_.m;
  h.ef_construction = options_.ef_construction;
  h.ef_search = options_.ef_search;
  h.seed = options_.seed;
  const uint64_t ep = entry_.load(std::memory_order_acquire);
  h.entry_node = ep == kNoEntry ? 0 : static_cast<uint32_t>(ep >> 8);
  h.entry_level = ep == kNoEntry ? -1 : static_cast<int32_t>(ep & 0xff);
  h.node_count = next_node_.load(std::memory_order_acquire);
  // The header goes first with placeholder CRCs, then is rewritten.
  const std::streampos start = out.tellp();
  out.write(reinterpret_cast<const char*>(&h), sizeof(h));
  CrcWriter w(out);
  std::vector<NodeId> ids;
  for (NodeId id = 0; id < h.node_count; ++id) {
    const NodeState state = StateOf(id);
    QUIVER_CHECK(state != kUnready);  // Writers must be stopped.
    w.Put<uint64_t>(LabelOf(id));
    w.Put<uint8_t>(static_cast<uint8_t>(LevelOf(id)));
    w.Put<uint8_t>(state);
    w.Write(Vector(id), options_.dimension * sizeof(float));
    for (int l = 0; l <= LevelOf(id); ++l) {
      const std::atomic<NodeId>* links = Links(id, l);
      const uint32_t count = links[0].load(std::memory_order_acquire);
      ids.resize(count);
      for (uint32_t i = 0; i < count; ++i) ids[i] = links[1 + i].load(std::memory_order_acquire);
      w.Put<uint32_t>(count);
      w.Write(ids.data(), count * sizeof(NodeId));
    }
  }
  h.body_crc = w.crc();
  h.header_crc = 0;
  h.header_crc = Crc32c(std::string_view(reinterpret_cast<const char*>(&h), sizeof(h)));
  const std::streampos end = out.tellp();
  out.seekp(start);
  out.write(reinterpret_cast<const char*>(&h), sizeof(h));
  out.seekp(end);
  out.flush();
  if (!out) return absl::InternalError("writing the HNSW checkpoint failed");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HnswIndex>> HnswIndex::Load(std::istream& in,
                                                           const DistanceKernels& kernels) {
  FileHeader h;
  if (!in.read(reinterpret_cast<char*>(&h), sizeof(h))) {
    return absl::DataLossError("HNSW checkpoint is shorter than its header");
  }
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError("not an HNSW checkpoint (bad magic)");
  }
  const uint32_t stored_crc = h.header_crc;
  h.header_crc = 0;
  if (Crc32c(std::string_view(reinterpret_cast<const char*>(&h), sizeof(h))) != stored_crc) {
    return absl::DataLossError("HNSW checkpoint header is damaged (checksum mismatch)");
  }
  if (h.version != kFormatVersion || h.header_bytes != sizeof(FileHeader)) {
    return absl::FailedPreconditionError(
        StrCat("HNSW checkpoint has format version ", h.version, "; this server reads version ",
               kFormatVersion));
  }
  HnswOptions o;
  o.dimension = h.dimension;
  o.metric = static_cast<Metric>(h.metric);
  o.m = h.m;
  o.ef_construction = h.ef_construction;
  o.ef_search = h.ef_search;
  o.seed = h.seed;
  if (h.metric > 2 || !o.Validate().ok() || h.node_count >= std::numeric_limits<NodeId>::max()) {
    return absl::DataLossError("HNSW checkpoint header holds impossible parameters");
  }
  auto index = std::make_unique<HnswIndex>(o, kernels);
  CrcReader r(in);
  auto truncated = [] { return absl::DataLossError("HNSW checkpoint is truncated"); };
  const uint64_t n = h.node_count;
  std::vector<float> vec(o.dimension);
  for (uint64_t i = 0; i < n; ++i) {
    const NodeId id = static_cast<NodeId>(i);
    uint64_t label;
    uint8_t level, state;
    if (!r.Get(&label) || !r.Get(&level) || !r.Get(&state) ||
        !r.Read(vec.data(), vec.size() * sizeof(float))) {
      return truncated();
    }
    if (state > kDeleted || level > 30) return absl::DataLossError("HNSW checkpoint node is damaged");
    index->next_node_.store(id + 1, std::memory_order_relaxed);
    index->EnsureSegment(id);
    size_t off;
    Segment& s = index->SegmentOf(id, &off);
    s.labels[off] = label;
    s.levels[off] = level;
    std::memcpy(s.blocks.get() + off * index->block_bytes_ + index->links0_bytes_, vec.data(),
                vec.size() * sizeof(float));
    if (level > 0) {
      const size_t slots = static_cast<size_t>(level) * (1 + o.m);
      s.upper[off] = std::make_unique<std::atomic<NodeId>[]>(slots);
    }
    for (int l = 0; l <= level; ++l) {
      uint32_t count;
      if (!r.Get(&count)) return truncated();
      if (count > index->MaxLinks(l)) return absl::DataLossError("HNSW checkpoint links are damaged");
      std::atomic<NodeId>* links = index->Links(id, l);
      for (uint32_t k = 0; k < count; ++k) {
        NodeId nb;
        if (!r.Get(&nb)) return truncated();
        if (nb >= n) return absl::DataLossError("HNSW checkpoint links point past the graph");
        links[1 + k].store(nb, std::memory_order_relaxed);
      }
      links[0].store(count, std::memory_order_relaxed);
    }
    s.states[off].store(state, std::memory_order_relaxed);
    if (state == kLive) {
      std::lock_guard<std::mutex> lock(index->label_mu_);
      index->node_of_[label] = id;
    } else {
      index->deleted_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (r.crc() != h.body_crc) {
    return absl::DataLossError("HNSW checkpoint body is damaged (checksum mismatch)");
  }
  if (h.entry_level >= 0) {
    if (h.entry_node >= n || index->LevelOf(h.entry_node) != h.entry_level) {
      return absl::DataLossError("HNSW checkpoint entry point is damaged");
    }
    index->entry_.store(uint64_t{h.entry_node} << 8 | static_cast<uint64_t>(h.entry_level),
                        std::memory_order_release);
  }
  return index;
}

}  // namespace quiver::ann
