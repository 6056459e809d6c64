#include "storage/collection_config.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "common/coding.h"
#include "common/strings.h"

namespace quiver::storage {
namespace {
constexpr uint8_t kCatalogFormatVersion = 1;
}  // namespace

absl::Status ValidateCollectionName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("collection name must not be empty");
  if (name.size() > kMaxCollectionNameBytes) {
    return absl::InvalidArgumentError(StrCat("collection name is ", name.size(),
                                             " bytes; the limit is ", kMaxCollectionNameBytes));
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) {
    return absl::InvalidArgumentError(
        StrCat("collection name ", Quoted(name), " must start with a letter or digit"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return absl::InvalidArgumentError(StrCat("collection name ", Quoted(name),
                                               " may contain only letters, digits, '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

absl::Status CollectionConfig::Validate() const {
  if (absl::Status s = ValidateCollectionName(name); !s.ok()) return s;
  if (dimension < 1 || dimension > kMaxDimension) {
    return absl::InvalidArgumentError(StrCat("collection ", Quoted(name), ": dimension ", dimension,
                                             " is out of range 1..", kMaxDimension));
  }
  if (metric != ann::Metric::kCosine && metric != ann::Metric::kDot && metric != ann::Metric::kL2) {
    return absl::InvalidArgumentError("metric must be cosine, dot or l2");
  }
  if (index == IndexKind::kHnsw) {
    if (hnsw.m < 2 || hnsw.m > 128) {
      return absl::InvalidArgumentError(StrCat("hnsw.m is ", hnsw.m, "; it must be in 2..128"));
    }
    if (hnsw.ef_construction < 1 || hnsw.ef_construction > 4096) {
      return absl::InvalidArgumentError(
          StrCat("hnsw.ef_construction is ", hnsw.ef_construction, "; it must be in 1..4096"));
    }
    if (hnsw.ef_search < 1 || hnsw.ef_search > 10000) {
      return absl::InvalidArgumentError(
          StrCat("hnsw.ef_search is ", hnsw.ef_search, "; it must be in 1..10000"));
    }
    if (!ann::KnownQuantization(hnsw.quantization)) {
      return absl::InvalidArgumentError("hnsw.quantization must be none, sq8 or binary");
    }
    if (!(hnsw.oversampling >= 1 && hnsw.oversampling <= 100)) {
      return absl::InvalidArgumentError(
          StrCat("hnsw.oversampling is ", hnsw.oversampling, "; it must be in 1..100"));
    }
    if (hnsw.full_vectors_on_disk && hnsw.quantization == ann::Quantization::kNone) {
      return absl::InvalidArgumentError(
          "hnsw.full_vectors_on_disk needs a quantization: an unquantized graph walks the full "
          "vectors");
    }
  } else if (hnsw.quantization != ann::Quantization::kNone) {
    return absl::InvalidArgumentError("quantization needs the hnsw index");
  }
  if (text.enabled) {
    if (!(text.bm25_k1 >= 0 && std::isfinite(text.bm25_k1))) {
      return absl::InvalidArgumentError("text.bm25_k1 must be a finite number >= 0");
    }
    if (!(text.bm25_b >= 0 && text.bm25_b <= 1)) {
      return absl::InvalidArgumentError("text.bm25_b must be in [0, 1]");
    }
  }
  if (chunking.chunk_tokens < kMinChunkTokens || chunking.chunk_tokens > kMaxChunkTokens) {
    return absl::InvalidArgumentError(StrCat("chunk_tokens is ", chunking.chunk_tokens,
                                             "; it must be in ", kMinChunkTokens, "..",
                                             kMaxChunkTokens));
  }
  if (chunking.overlap_tokens * 2 >= chunking.chunk_tokens) {
    return absl::InvalidArgumentError(StrCat("overlap_tokens is ", chunking.overlap_tokens,
                                             "; it must be less than half of chunk_tokens (",
                                             chunking.chunk_tokens, ")"));
  }
  return absl::OkStatus();
}

std::string_view IndexKindName(IndexKind k) {
  switch (k) {
    case IndexKind::kFlat:
      return "flat";
    case IndexKind::kHnsw:
      return "hnsw";
  }
  return "unknown";
}

std::string EncodeCollectionMeta(const CollectionMeta& meta) {
  const CollectionConfig& c = meta.config;
  std::string out;
  out.push_back(static_cast<char>(kCatalogFormatVersion));
  PutFixed32(&out, meta.id);
  PutFixed64(&out, static_cast<uint64_t>(meta.created_unix_ms));
  PutLengthPrefixed(&out, c.name);
  PutVarint64(&out, c.dimension);
  out.push_back(static_cast<char>(c.metric));
  out.push_back(static_cast<char>(c.index));
  PutVarint64(&out, c.hnsw.m);
  PutVarint64(&out, c.hnsw.ef_construction);
  PutVarint64(&out, c.hnsw.ef_search);
  out.push_back(c.text.enabled ? 1 : 0);
  PutLengthPrefixed(&out, c.text.analyzer);
  PutFloat(&out, c.text.bm25_k1);
  PutFloat(&out, c.text.bm25_b);
  PutLengthPrefixed(&out, c.text.text_field);
  PutLengthPrefixed(&out, c.embedding_model);
  // Added after format 1 shipped: entries written before end here and
  // decode with the defaults.
  PutVarint64(&out, c.chunking.chunk_tokens);
  PutVarint64(&out, c.chunking.overlap_tokens);
  // Added later still (quantization).
  out.push_back(static_cast<char>(c.hnsw.quantization));
  PutFloat(&out, c.hnsw.oversampling);
  out.push_back(
      static_cast<char>((c.hnsw.rescore ? 1 : 0) | (c.hnsw.full_vectors_on_disk ? 2 : 0)));
  return out;
}

absl::StatusOr<CollectionMeta> DecodeCollectionMeta(std::string_view in) {
  auto corrupt = [](std::string_view what) {
    return absl::DataLossError(StrCat("catalog entry is damaged: ", what));
  };
  if (in.empty() || static_cast<uint8_t>(in[0]) != kCatalogFormatVersion) {
    return corrupt("unknown format version");
  }
  in.remove_prefix(1);
  CollectionMeta meta;
  CollectionConfig& c = meta.config;
  uint64_t created, v, m, efc, efs;
  std::string_view name, analyzer, field, model;
  if (!GetFixed32(&in, &meta.id) || !GetFixed64(&in, &created) || !GetLengthPrefixed(&in, &name) ||
      !GetVarint64(&in, &v) || in.size() < 2) {
    return corrupt("header");
  }
  meta.created_unix_ms = static_cast<int64_t>(created);
  c.name = std::string(name);
  c.dimension = static_cast<uint32_t>(v);
  c.metric = static_cast<ann::Metric>(in[0]);
  c.index = static_cast<IndexKind>(in[1]);
  in.remove_prefix(2);
  if (!GetVarint64(&in, &m) || !GetVarint64(&in, &efc) || !GetVarint64(&in, &efs) || in.empty()) {
    return corrupt("index parameters");
  }
  c.hnsw = {static_cast<uint32_t>(m), static_cast<uint32_t>(efc), static_cast<uint32_t>(efs)};
  c.text.enabled = in[0] != 0;
  in.remove_prefix(1);
  if (!GetLengthPrefixed(&in, &analyzer) || !GetFloat(&in, &c.text.bm25_k1) ||
      !GetFloat(&in, &c.text.bm25_b) || !GetLengthPrefixed(&in, &field) ||
      !GetLengthPrefixed(&in, &model)) {
    return corrupt("text or embedding settings");
  }
  if (!in.empty()) {
    uint64_t chunk, overlap;
    if (!GetVarint64(&in, &chunk) || !GetVarint64(&in, &overlap)) {
      return corrupt("chunking settings");
    }
    c.chunking = {static_cast<uint32_t>(chunk), static_cast<uint32_t>(overlap)};
  }
  if (!in.empty()) {
    if (in.size() < 1 + 4 + 1) return corrupt("quantization settings");
    c.hnsw.quantization = static_cast<ann::Quantization>(in[0]);
    in.remove_prefix(1);
    if (!GetFloat(&in, &c.hnsw.oversampling) || in.size() != 1) {
      return corrupt("quantization settings");
    }
    const auto flags = static_cast<uint8_t>(in[0]);
    if (flags > 3) return corrupt("quantization settings");
    c.hnsw.rescore = (flags & 1) != 0;
    c.hnsw.full_vectors_on_disk = (flags & 2) != 0;
  }
  c.text.analyzer = std::string(analyzer);
  c.text.text_field = std::string(field);
  c.embedding_model = std::string(model);
  if (absl::Status s = c.Validate(); !s.ok()) return corrupt(std::string(s.message()));
  return meta;
}

}  // namespace quiver::storage
