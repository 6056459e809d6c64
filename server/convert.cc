#include "server/convert.h"

#include "common/status_macros.h"
#include "common/strings.h"
#include "text/analyzer.h"

namespace quiver::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode values are defined to match grpc::StatusCode one to one.
  // A status message travels in one HTTP/2 header; past about 64 KB the
  // transport sends nothing at all and the call hangs, so messages are cut
  // (values they echo are already shortened by Quoted).
  constexpr size_t kMaxMessageBytes = 4096;
  std::string_view message(status.message().data(), status.message().size());
  if (message.size() <= kMaxMessageBytes) {
    return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(message));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      StrCat(Utf8Prefix(message, kMaxMessageBytes), "... (message cut at ",
                             kMaxMessageBytes, " of ", message.size(), " bytes)"));
}

storage::SparseVector SparseFromProto(const v1::SparseValues& proto) {
  storage::SparseVector out;
  out.indices.assign(proto.indices().begin(), proto.indices().end());
  out.values.assign(proto.values().begin(), proto.values().end());
  return out;
}

void SparseToProto(const storage::SparseVector& sparse, v1::SparseValues* proto) {
  proto->mutable_indices()->Add(sparse.indices.begin(), sparse.indices.end());
  proto->mutable_values()->Add(sparse.values.begin(), sparse.values.end());
}

absl::StatusOr<storage::Record> RecordFromProto(const v1::Record& proto) {
  storage::Record r;
  r.id = proto.id();
  r.values.assign(proto.values().begin(), proto.values().end());
  r.sparse = SparseFromProto(proto.sparse_values());
  if (proto.has_metadata()) {
    auto md = storage::MetadataFromJson(StructToJson(proto.metadata()));
    if (!md.ok()) {
      return absl::InvalidArgumentError(
          StrCat("record ", Quoted(proto.id()), ": ", md.status().message()));
    }
    r.metadata = *std::move(md);
  }
  r.text = proto.text();
  return r;
}

void RecordToProto(const storage::Record& record, v1::Record* proto) {
  proto->set_id(record.id);
  proto->mutable_values()->Add(record.values.begin(), record.values.end());
  if (!record.sparse.empty()) SparseToProto(record.sparse, proto->mutable_sparse_values());
  if (!record.metadata.empty()) {
    JsonToStruct(storage::MetadataToJson(record.metadata), proto->mutable_metadata());
  }
  proto->set_text(record.text);
}

absl::StatusOr<storage::CollectionConfig> ConfigFromProto(const v1::CollectionConfig& proto) {
  storage::CollectionConfig c;
  c.name = proto.name();
  c.dimension = proto.dimension();
  switch (proto.metric()) {
    case v1::METRIC_UNSPECIFIED:
    case v1::METRIC_COSINE:
      c.metric = ann::Metric::kCosine;
      break;
    case v1::METRIC_DOT:
      c.metric = ann::Metric::kDot;
      break;
    case v1::METRIC_L2:
      c.metric = ann::Metric::kL2;
      break;
    default:
      return absl::InvalidArgumentError(
          StrCat("unknown metric ", static_cast<int>(proto.metric())));
  }
  if (proto.index().has_hnsw()) {
    // Zero means "the default" for each parameter.
    const v1::HnswIndexConfig& h = proto.index().hnsw();
    c.index = storage::IndexKind::kHnsw;
    if (h.m() != 0) c.hnsw.m = h.m();
    if (h.ef_construction() != 0) c.hnsw.ef_construction = h.ef_construction();
    if (h.ef_search() != 0) c.hnsw.ef_search = h.ef_search();
    switch (h.quantization()) {
      case v1::QUANTIZATION_UNSPECIFIED:
      case v1::QUANTIZATION_NONE:
        c.hnsw.quantization = ann::Quantization::kNone;
        break;
      case v1::QUANTIZATION_SQ8:
        c.hnsw.quantization = ann::Quantization::kSq8;
        break;
      case v1::QUANTIZATION_BINARY:
        c.hnsw.quantization = ann::Quantization::kBinary;
        break;
      default:
        return absl::InvalidArgumentError(
            StrCat("unknown quantization ", static_cast<int>(h.quantization())));
    }
    if (h.oversampling() != 0) c.hnsw.oversampling = h.oversampling();
    if (h.has_rescore()) c.hnsw.rescore = h.rescore();
    c.hnsw.full_vectors_on_disk = h.full_vectors_on_disk();
  } else {
    c.index = storage::IndexKind::kFlat;
  }
  if (proto.text().enabled()) {
    const v1::TextConfig& t = proto.text();
    c.text.enabled = true;
    if (!t.analyzer().empty()) c.text.analyzer = t.analyzer();
    RETURN_IF_ERROR(text::Analyzer::Named(c.text.analyzer).status());
    // Both zero means "the defaults" (k1 = 0.9, b = 0.4, as Anserini).
    if (t.bm25_k1() != 0 || t.bm25_b() != 0) {
      c.text.bm25_k1 = t.bm25_k1();
      c.text.bm25_b = t.bm25_b();
    }
    c.text.text_field = t.text_field();
  }
  c.embedding_model = proto.embedding().model();
  if (proto.embedding().chunk_tokens() != 0) {
    c.chunking.chunk_tokens = proto.embedding().chunk_tokens();
  }
  c.chunking.overlap_tokens = proto.embedding().has_overlap_tokens()
                                  ? proto.embedding().overlap_tokens()
                                  : storage::DefaultOverlapTokens(c.chunking.chunk_tokens);
  // With an embedding model the dimension may be left 0: the engine takes
  // the model's.
  if (c.embedding_model.empty() || c.dimension != 0) RETURN_IF_ERROR(c.Validate());
  return c;
}

void MemoryToProto(const MemoryAmounts& memory, v1::MemoryUsage* proto) {
  proto->set_total_bytes(Sum(memory));
  for (size_t i = 0; i < kMemoryParts; ++i) {
    if (memory[i] > 0) {
      (*proto->mutable_parts())[std::string(MemoryPartName(static_cast<MemoryPart>(i)))] =
          memory[i];
    }
  }
}

void CollectionInfoToProto(const db::CollectionInfo& info, v1::CollectionInfo* proto) {
  const storage::CollectionConfig& c = info.meta.config;
  v1::CollectionConfig* pc = proto->mutable_config();
  pc->set_name(c.name);
  pc->set_dimension(c.dimension);
  switch (c.metric) {
    case ann::Metric::kCosine:
      pc->set_metric(v1::METRIC_COSINE);
      break;
    case ann::Metric::kDot:
      pc->set_metric(v1::METRIC_DOT);
      break;
    case ann::Metric::kL2:
      pc->set_metric(v1::METRIC_L2);
      break;
  }
  if (c.index == storage::IndexKind::kHnsw) {
    auto* h = pc->mutable_index()->mutable_hnsw();
    h->set_m(c.hnsw.m);
    h->set_ef_construction(c.hnsw.ef_construction);
    h->set_ef_search(c.hnsw.ef_search);
    h->set_quantization(c.hnsw.quantization == ann::Quantization::kSq8 ? v1::QUANTIZATION_SQ8
                        : c.hnsw.quantization == ann::Quantization::kBinary
                            ? v1::QUANTIZATION_BINARY
                            : v1::QUANTIZATION_NONE);
    h->set_oversampling(c.hnsw.oversampling);
    h->set_rescore(c.hnsw.rescore);
    h->set_full_vectors_on_disk(c.hnsw.full_vectors_on_disk);
  } else {
    pc->mutable_index()->mutable_flat();
  }
  if (c.text.enabled) {
    auto* t = pc->mutable_text();
    t->set_enabled(true);
    t->set_analyzer(c.text.analyzer);
    t->set_bm25_k1(c.text.bm25_k1);
    t->set_bm25_b(c.text.bm25_b);
    t->set_text_field(c.text.text_field);
  }
  if (!c.embedding_model.empty()) {
    pc->mutable_embedding()->set_model(c.embedding_model);
    pc->mutable_embedding()->set_chunk_tokens(c.chunking.chunk_tokens);
    pc->mutable_embedding()->set_overlap_tokens(c.chunking.overlap_tokens);
  }
  proto->set_record_count(info.record_count);
  proto->set_namespace_count(info.namespace_count);
  proto->set_created_unix_ms(info.meta.created_unix_ms);
}

}  // namespace quiver::server
