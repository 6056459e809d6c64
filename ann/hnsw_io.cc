// HnswIndex checkpoints: Save and Load (format: docs/hnsw_format.md).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <istream>
#include <limits>
#include <ostream>
#include <string_view>

#include "ann/hnsw.h"
#include "ann/hnsw_internal.h"
#include "common/coding.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace quiver::ann {

using NodeId = HnswIndex::NodeId;

namespace {

constexpr char kMagic[8] = {'Q', 'V', 'H', 'N', 'S', 'W', '\r', '\n'};
// Version 2 added quantization (the last 24 bytes of the header); version 3
// moved SQ8's range from the header (one per index) to the body (one per
// dimension). Versions 1 (72-byte header, unquantized) and 2 still load.
constexpr uint32_t kFormatVersion = 3;
constexpr uint32_t kV1HeaderBytes = 72;

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
  uint32_t header_crc;    // CRC-32C of this header with header_crc = 0.
  uint32_t quantization;  // Version 1: reserved, 0.
  // Version 2 from here.
  float oversampling;
  uint32_t rescore;
  float sq8_center;  // Version 2 SQ8: the range; sq8_scale 0: not trained.
  float sq8_scale;   // Version 3: 0, 0.
  uint64_t clamped_values;
};
static_assert(sizeof(FileHeader) == 96, "checkpoint header is 96 bytes");

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
  h.metric = static_cast<uint32_t>(options_.metric) - 1;  // Format: 0 cosine, 1 dot, 2 l2.
  h.m = options_.m;
  h.ef_construction = options_.ef_construction;
  h.ef_search = options_.ef_search;
  h.seed = options_.seed;
  h.quantization = static_cast<uint32_t>(options_.quantization);
  h.oversampling = options_.oversampling;
  h.rescore = options_.rescore ? 1 : 0;
  h.clamped_values = clamped_values();
  const uint64_t ep = entry_.load(std::memory_order_acquire);
  h.entry_node = ep == kNoEntry ? 0 : static_cast<uint32_t>(ep >> 8);
  h.entry_level = ep == kNoEntry ? -1 : static_cast<int32_t>(ep & 0xff);
  h.node_count = next_node_.load(std::memory_order_acquire);
  // The header goes first with placeholder CRCs, then is rewritten.
  const std::streampos start = out.tellp();
  out.write(reinterpret_cast<const char*>(&h), sizeof(h));
  CrcWriter w(out);
  // A quantizer leads the body: binary thresholds, or SQ8 centers and scales.
  if (quantized()) {
    const bool trained = trained_.load(std::memory_order_acquire);
    w.Put<uint64_t>(trained ? trained_sample_ : 0);
    const std::vector<float> zeros(options_.dimension, 0.0f);
    const size_t bytes = options_.dimension * sizeof(float);
    if (!sq8()) {
      w.Write(trained ? binary_threshold_.data() : zeros.data(), bytes);
    } else {
      w.Write(trained ? sq8_.center.data() : zeros.data(), bytes);
      w.Write(trained ? sq8_.scale.data() : zeros.data(), bytes);
    }
  }
  std::vector<NodeId> ids;
  for (NodeId id = 0; id < h.node_count; ++id) {
    const NodeState state = StateOf(id);
    QUIVER_CHECK(state != kUnready);  // Writers must be stopped.
    w.Put<uint64_t>(LabelOf(id));
    w.Put<uint8_t>(static_cast<uint8_t>(LevelOf(id)));
    w.Put<uint8_t>(state);
    w.Write(Full(id), options_.dimension * sizeof(float));
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
                                                           const DistanceKernels& kernels,
                                                           const std::string& full_vectors_dir) {
  FileHeader h{};
  char* const raw = reinterpret_cast<char*>(&h);
  if (!in.read(raw, kV1HeaderBytes)) {
    return absl::DataLossError("HNSW checkpoint is shorter than its header");
  }
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError("not an HNSW checkpoint (bad magic)");
  }
  if (h.version > kFormatVersion) {
    return absl::FailedPreconditionError(StrCat("HNSW checkpoint has format version ", h.version,
                                                "; this server reads versions 1 to ",
                                                kFormatVersion));
  }
  const size_t header_bytes = h.version == 1 ? kV1HeaderBytes : sizeof(FileHeader);
  if (h.header_bytes != header_bytes) {
    return absl::DataLossError("HNSW checkpoint header is damaged (wrong size)");
  }
  if (header_bytes > kV1HeaderBytes &&
      !in.read(raw + kV1HeaderBytes, static_cast<std::streamsize>(header_bytes - kV1HeaderBytes))) {
    return absl::DataLossError("HNSW checkpoint is shorter than its header");
  }
  const uint32_t stored_crc = h.header_crc;
  h.header_crc = 0;
  if (Crc32c(std::string_view(raw, header_bytes)) != stored_crc) {
    return absl::DataLossError("HNSW checkpoint header is damaged (checksum mismatch)");
  }
  if (h.version == 1) {  // Unquantized; the defaults for the rest.
    h.quantization = 0;
    h.oversampling = HnswOptions().oversampling;
    h.rescore = 1;
  }
  HnswOptions o;
  o.dimension = h.dimension;
  o.metric = static_cast<Metric>(h.metric + 1);
  o.m = h.m;
  o.ef_construction = h.ef_construction;
  o.ef_search = h.ef_search;
  o.seed = h.seed;
  o.quantization = static_cast<Quantization>(h.quantization);
  o.oversampling = h.oversampling;
  o.rescore = h.rescore != 0;
  o.full_vectors_dir = full_vectors_dir;
  // The raw field: a value past uint8 must not wrap into a known kind.
  if (h.metric > 2 || h.quantization > static_cast<uint32_t>(Quantization::kBinary) ||
      !o.Validate().ok() || h.node_count >= std::numeric_limits<NodeId>::max() ||
      !(h.sq8_scale >= 0) || !std::isfinite(h.sq8_scale) || !std::isfinite(h.sq8_center)) {
    return absl::DataLossError("HNSW checkpoint header holds impossible parameters");
  }
  auto index = std::make_unique<HnswIndex>(o, kernels);
  CrcReader r(in);
  auto truncated = [] { return absl::DataLossError("HNSW checkpoint is truncated"); };
  const uint64_t n = h.node_count;
  std::vector<float> vec(o.dimension);
  auto no_quantizer = [] {
    return absl::DataLossError("HNSW checkpoint of a quantized graph has no quantizer");
  };
  // The quantizer: trained from `sample` vectors (0: not yet).
  auto trained = [&](uint64_t sample) {
    index->trained_sample_ = static_cast<size_t>(std::min<uint64_t>(sample, 1u << 30));
    index->trained_nodes_ = h.node_count;
    index->clamped_.store(h.clamped_values, std::memory_order_relaxed);
    index->trained_.store(true, std::memory_order_release);
  };
  if (index->sq8() && h.version <= 2) {  // One range in the header.
    if (h.sq8_scale > 0) {
      index->sq8_ = Sq8Params::Uniform(h.sq8_center, h.sq8_scale, o.dimension);
      trained(1);
    } else if (n > 0) {
      return no_quantizer();
    }
  } else if (index->quantized()) {
    // Binary thresholds, or SQ8 centers followed by scales.
    uint64_t sample = 0;
    std::vector<float> first(o.dimension), scale(index->sq8() ? o.dimension : 0);
    if (!r.Get(&sample) || !r.Read(first.data(), first.size() * sizeof(float)) ||
        !r.Read(scale.data(), scale.size() * sizeof(float))) {
      return truncated();
    }
    auto bad_scale = [&](float s) { return !std::isfinite(s) || (sample > 0 && !(s > 0)); };
    if (std::any_of(first.begin(), first.end(), [](float v) { return !std::isfinite(v); }) ||
        std::any_of(scale.begin(), scale.end(), bad_scale)) {
      return absl::DataLossError("HNSW checkpoint quantizer is damaged");
    }
    if (sample == 0) {
      if (n > 0) return no_quantizer();
    } else {
      if (index->sq8()) {
        index->sq8_.center = std::move(first);
        index->sq8_.scale = std::move(scale);
      } else {
        index->binary_threshold_ = std::move(first);
      }
      trained(sample);
    }
  }
  for (uint64_t i = 0; i < n; ++i) {
    const NodeId id = static_cast<NodeId>(i);
    uint64_t label;
    uint8_t level, state;
    if (!r.Get(&label) || !r.Get(&level) || !r.Get(&state) ||
        !r.Read(vec.data(), vec.size() * sizeof(float))) {
      return truncated();
    }
    if (state > kDeleted || level > 30)
      return absl::DataLossError("HNSW checkpoint node is damaged");
    index->next_node_.store(id + 1, std::memory_order_relaxed);
    index->EnsureSegment(id);
    size_t off;
    Segment& s = index->SegmentOf(id, &off);
    s.labels[off] = label;
    s.levels[off] = level;
    std::byte* code = s.blocks.get() + off * index->block_bytes_ + index->links0_bytes_;
    if (index->quantized()) {
      // The codes are the full vector's under the saved range: the graph
      // walks exactly what it was built on.
      std::memcpy(s.full->data() + off * o.dimension, vec.data(), vec.size() * sizeof(float));
      uint64_t clamped = 0;
      index->EncodeInto(vec.data(), code, &clamped);
    } else {
      std::memcpy(code, vec.data(), vec.size() * sizeof(float));
    }
    if (level > 0) {
      const size_t slots = static_cast<size_t>(level) * (1 + o.m);
      s.upper[off] = std::make_unique<std::atomic<NodeId>[]>(slots);
    }
    for (int l = 0; l <= level; ++l) {
      uint32_t count;
      if (!r.Get(&count)) return truncated();
      if (count > index->MaxLinks(l))
        return absl::DataLossError("HNSW checkpoint links are damaged");
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
  // Checkpoints written before the repair existed may hold unreachable
  // nodes.
  index->RepairReachability();
  return index;
}

}  // namespace quiver::ann
