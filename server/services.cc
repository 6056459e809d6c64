#include "server/services.h"

#include <algorithm>
#include <cmath>

#include "absl/time/clock.h"
#include "common/coding.h"
#include "common/strings.h"
#include "server/convert.h"
#include "storage/collection_config.h"

namespace quiver::server {

grpc::Status Guarded::Guard(grpc::CallbackServerContext* ctx, bool write) const {
  if (keys_ == nullptr || !keys_->enabled()) return grpc::Status::OK;
  const auto& md = ctx->client_metadata();
  auto value = [&md](const char* key) {
    auto it = md.find(key);
    return it == md.end() ? std::string_view()
                          : std::string_view(it->second.data(), it->second.size());
  };
  return ToGrpcStatus(
      keys_->Authorize(ApiKeys::PresentedKey(value("api-key"), value("authorization")), write));
}

// ---- Collections ----------------------------------------------------------

grpc::Status CollectionsService::Create(grpc::CallbackServerContext* ctx,
                                        const v1::CreateCollectionRequest* req,
                                        v1::CreateCollectionResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/true); !denied.ok()) return denied;
  auto config = ConfigFromProto(req->config());
  if (!config.ok()) return ToGrpcStatus(config.status());
  auto info = engine_->CreateCollection(*config);
  if (!info.ok()) return ToGrpcStatus(info.status());
  CollectionInfoToProto(*info, resp->mutable_collection());
  return grpc::Status::OK;
}

grpc::Status CollectionsService::Get(grpc::CallbackServerContext* ctx,
                                     const v1::GetCollectionRequest* req,
                                     v1::GetCollectionResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  auto info = engine_->GetCollection(req->name());
  if (!info.ok()) return ToGrpcStatus(info.status());
  CollectionInfoToProto(*info, resp->mutable_collection());
  return grpc::Status::OK;
}

grpc::Status CollectionsService::List(grpc::CallbackServerContext* ctx,
                                      const v1::ListCollectionsRequest*,
                                      v1::ListCollectionsResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  for (const db::CollectionInfo& info : engine_->ListCollections()) {
    CollectionInfoToProto(info, resp->add_collections());
  }
  return grpc::Status::OK;
}

grpc::Status CollectionsService::Delete(grpc::CallbackServerContext* ctx,
                                        const v1::DeleteCollectionRequest* req,
                                        v1::DeleteCollectionResponse*) {
  if (grpc::Status denied = Guard(ctx, /*write=*/true); !denied.ok()) return denied;
  return ToGrpcStatus(engine_->DropCollection(req->name()));
}

// ---- Points ---------------------------------------------------------------

grpc::Status PointsService::Upsert(grpc::CallbackServerContext* ctx, const v1::UpsertRequest* req,
                                   v1::UpsertResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/true); !denied.ok()) return denied;
  std::vector<storage::Record> records;
  records.reserve(req->records_size());
  for (const v1::Record& r : req->records()) {
    auto record = RecordFromProto(r);
    if (!record.ok()) return ToGrpcStatus(record.status());
    records.push_back(*std::move(record));
  }
  auto n = engine_->Upsert(req->collection(), req->namespace_(), std::move(records));
  if (!n.ok()) return ToGrpcStatus(n.status());
  resp->set_upserted_count(static_cast<uint32_t>(*n));
  return grpc::Status::OK;
}

grpc::Status PointsService::Fetch(grpc::CallbackServerContext* ctx, const v1::FetchRequest* req,
                                  v1::FetchResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  std::vector<std::string> ids(req->ids().begin(), req->ids().end());
  auto result = engine_->Fetch(req->collection(), req->namespace_(), ids);
  if (!result.ok()) return ToGrpcStatus(result.status());
  for (const storage::Record& r : result->records) RecordToProto(r, resp->add_records());
  for (const std::string& id : result->missing_ids) resp->add_missing_ids(id);
  resp->set_namespace_(req->namespace_());
  return grpc::Status::OK;
}

grpc::Status PointsService::Update(grpc::CallbackServerContext* ctx, const v1::UpdateRequest* req,
                                   v1::UpdateResponse*) {
  if (grpc::Status denied = Guard(ctx, /*write=*/true); !denied.ok()) return denied;
  db::UpdateSpec spec;
  spec.id = req->id();
  if (req->values_size() > 0) spec.values.emplace(req->values().begin(), req->values().end());
  if (req->has_sparse_values()) spec.sparse = SparseFromProto(req->sparse_values());
  if (req->has_set_metadata()) spec.set_metadata = StructToJson(req->set_metadata());
  if (req->has_text()) spec.text = req->text();
  if (!spec.values && !spec.sparse && !spec.set_metadata && !spec.text) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "update changes nothing: set values, sparse_values, set_metadata or text");
  }
  return ToGrpcStatus(engine_->Update(req->collection(), req->namespace_(), std::move(spec)));
}

grpc::Status PointsService::Delete(grpc::CallbackServerContext* ctx, const v1::DeleteRequest* req,
                                   v1::DeleteResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/true); !denied.ok()) return denied;
  absl::StatusOr<uint64_t> n;
  switch (req->target_case()) {
    case v1::DeleteRequest::kIds: {
      std::vector<std::string> ids(req->ids().ids().begin(), req->ids().ids().end());
      n = engine_->DeleteIds(req->collection(), req->namespace_(), ids);
      break;
    }
    case v1::DeleteRequest::kFilter:
      n = engine_->DeleteByFilter(req->collection(), req->namespace_(),
                                  StructToJson(req->filter()));
      break;
    case v1::DeleteRequest::kDeleteAll:
      if (!req->delete_all()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "delete_all must be true when set");
      }
      n = engine_->DeleteAll(req->collection(), req->namespace_());
      break;
    case v1::DeleteRequest::TARGET_NOT_SET:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "delete needs one of ids, filter or delete_all");
  }
  if (!n.ok()) return ToGrpcStatus(n.status());
  resp->set_deleted_count(*n);
  return grpc::Status::OK;
}

grpc::Status PointsService::ListIds(grpc::CallbackServerContext* ctx, const v1::ListIdsRequest* req,
                                    v1::ListIdsResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  auto result = engine_->ListIds(req->collection(), req->namespace_(), req->prefix(), req->limit(),
                                 req->pagination_token());
  if (!result.ok()) return ToGrpcStatus(result.status());
  for (const std::string& id : result->ids) resp->add_ids(id);
  resp->set_next_pagination_token(result->next_pagination_token);
  return grpc::Status::OK;
}

grpc::Status PointsService::DescribeStats(grpc::CallbackServerContext* ctx,
                                          const v1::DescribeStatsRequest* req,
                                          v1::DescribeStatsResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  std::optional<Json> filter;
  if (req->has_filter()) filter = StructToJson(req->filter());
  auto stats = engine_->DescribeStats(req->collection(), filter);
  if (!stats.ok()) return ToGrpcStatus(stats.status());
  resp->set_dimension(stats->dimension);
  resp->set_total_record_count(stats->total_record_count);
  for (const auto& [name, ns] : stats->namespaces) {
    v1::NamespaceStats& out = (*resp->mutable_namespaces())[name];
    out.set_record_count(ns.record_count);
    out.set_memory_bytes(ns.memory_bytes);
  }
  MemoryToProto(stats->memory, resp->mutable_memory());
  resp->set_metric(std::string(ann::MetricName(stats->metric)));
  resp->set_index_type(std::string(storage::IndexKindName(stats->index)));
  resp->set_index_bytes_per_vector(stats->index_bytes_per_vector);
  resp->set_catching_up_count(stats->catching_up_count);
  return grpc::Status::OK;
}

grpc::Status PointsService::ListNamespaces(grpc::CallbackServerContext* ctx,
                                           const v1::ListNamespacesRequest* req,
                                           v1::ListNamespacesResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  auto names = engine_->ListNamespaces(req->collection());
  if (!names.ok()) return ToGrpcStatus(names.status());
  for (const std::string& n : *names) resp->add_namespaces(n);
  return grpc::Status::OK;
}

// ---- Search ---------------------------------------------------------------

grpc::Status SearchService::Query(grpc::CallbackServerContext* ctx, const v1::QueryRequest* req,
                                  v1::QueryResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  db::QueryRequest q;
  if (req->has_sparse_vector()) q.sparse = SparseFromProto(req->sparse_vector());
  if (req->has_hybrid()) {
    const v1::HybridOptions& h = req->hybrid();
    switch (h.fusion()) {
      case v1::HybridOptions::FUSION_UNSPECIFIED:
      case v1::HybridOptions::FUSION_RRF:
        q.hybrid.fusion = db::HybridSpec::Fusion::kRrf;
        break;
      case v1::HybridOptions::FUSION_WEIGHTED:
        q.hybrid.fusion = db::HybridSpec::Fusion::kWeighted;
        break;
      default:
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            StrCat("unknown hybrid fusion ", static_cast<int>(h.fusion())));
    }
    if (h.rrf_k() != 0) q.hybrid.rrf_k = h.rrf_k();
    q.hybrid.dense_weight = h.dense_weight();
    q.hybrid.sparse_weight = h.sparse_weight();
    q.hybrid.text_weight = h.text_weight();
    q.hybrid.candidate_depth = h.candidate_depth();
  }
  q.ns = req->namespace_();
  q.top_k = req->top_k();
  q.vector.assign(req->vector().begin(), req->vector().end());
  q.id = req->id();
  q.text = req->text();
  if (req->has_filter()) q.filter = StructToJson(req->filter());
  q.include_values = req->include_values();
  q.include_metadata = req->include_metadata();
  q.exact = req->exact();
  q.ef_search = req->ef_search();
  auto result = engine_->Query(req->collection(), q);
  if (!result.ok()) return ToGrpcStatus(result.status());
  for (db::Match& m : result->matches) {
    v1::ScoredRecord* out = resp->add_matches();
    out->set_id(m.id);
    out->set_score(m.score);
    out->mutable_values()->Add(m.values.begin(), m.values.end());
    if (!m.sparse.empty()) SparseToProto(m.sparse, out->mutable_sparse_values());
    if (m.metadata && !m.metadata->empty()) {
      JsonToStruct(storage::MetadataToJson(*m.metadata), out->mutable_metadata());
    }
    out->set_text(m.text);
    if (req->explain()) {
      for (const db::ScoreComponent& part : m.explanation) {
        v1::ScoreComponent* c = out->add_explanation();
        c->set_source(part.source);
        c->set_rank(part.rank);
        c->set_score(part.score);
      }
    }
  }
  resp->set_namespace_(req->namespace_());
  resp->set_exact(result->exact);
  resp->set_scanned_count(result->scanned_count);
  return grpc::Status::OK;
}

// ---- Models and RAG -------------------------------------------------------

namespace {
v1::FinishReason FinishToProto(llm::FinishReason r) {
  return r == llm::FinishReason::kStop ? v1::FINISH_REASON_STOP : v1::FINISH_REASON_LENGTH;
}

}  // namespace

grpc::Status ModelsService::Embed(grpc::CallbackServerContext* ctx, const v1::EmbedRequest* req,
                                  v1::EmbedResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  std::vector<std::string> inputs(req->inputs().begin(), req->inputs().end());
  auto result = embedding_->Embed(inputs, req->normalize(), req->model());
  if (!result.ok()) return ToGrpcStatus(result.status());
  for (size_t i = 0; i < result->vectors.size(); ++i) {
    v1::Embedding* e = resp->add_embeddings();
    e->mutable_values()->Add(result->vectors[i].begin(), result->vectors[i].end());
    e->set_token_count(result->token_counts[i]);
  }
  resp->set_model(embedding_->embed_name());
  return grpc::Status::OK;
}

grpc::Status ModelsService::Rerank(grpc::CallbackServerContext* ctx, const v1::RerankRequest* req,
                                   v1::RerankResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  std::vector<std::string> docs(req->documents().begin(), req->documents().end());
  auto ranked = embedding_->Rerank(req->query(), docs, req->top_n(), req->model());
  if (!ranked.ok()) return ToGrpcStatus(ranked.status());
  for (const embed::RankedDocument& d : *ranked) {
    v1::RerankResult* out = resp->add_results();
    out->set_index(d.index);
    out->set_score(d.score);
    if (req->return_documents()) out->set_document(docs[d.index]);
  }
  resp->set_model(embedding_->rerank_name());
  return grpc::Status::OK;
}

namespace {

// Leaves a generation's token counts in the trailers (for the access log
// and for clients) and writes its audit line.
void FinishGeneration(grpc::CallbackServerContext* ctx, std::string_view route,
                      const grpc::Status& status, AuditLog* audit, Json request,
                      std::string_view answer, const std::optional<GenerationUsage>& usage) {
  if (usage.has_value()) {
    ctx->AddTrailingMetadata(kPromptTokensKey, StrCat(usage->prompt_tokens));
    ctx->AddTrailingMetadata(kCompletionTokensKey, StrCat(usage->completion_tokens));
    ctx->AddTrailingMetadata(kCachedPromptTokensKey, StrCat(usage->cached_prompt_tokens));
  }
  if (audit == nullptr) return;
  audit->Write("grpc", route,
               absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
               std::move(request), answer, usage.value_or(GenerationUsage{}));
}

}  // namespace

grpc::Status ModelsService::Generate(grpc::CallbackServerContext* ctx,
                                     const v1::GenerateRequest* req,
                                     ResponseWriter<v1::GenerateResponse>* writer) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  const v1::SamplingParams& sp = req->sampling();
  llm::GenerationRequest g;
  g.model = req->model();
  g.prompt = req->prompt();
  for (const v1::ChatMessage& m : req->messages()) g.messages.push_back({m.role(), m.content()});
  g.temperature = sp.temperature();
  g.top_k = sp.top_k();
  g.top_p = sp.top_p();
  g.repetition_penalty = sp.repetition_penalty();
  g.seed = sp.seed();
  g.max_tokens = sp.max_tokens();
  g.stop.assign(sp.stop().begin(), sp.stop().end());
  // The scheduler asks before every step whether the client went away.
  std::string answer;
  std::optional<GenerationUsage> usage;
  absl::Status s = pipeline_->Generate(
      g, req->use_cache(),
      [&](const llm::TokenEvent& e, bool cached) {
        if (audit_ != nullptr) answer += e.text;
        if (e.done) {
          usage = GenerationUsage{static_cast<uint64_t>(e.prompt_tokens),
                                  static_cast<uint64_t>(e.completion_tokens),
                                  static_cast<uint64_t>(e.cached_prompt_tokens)};
        }
        v1::GenerateResponse resp;
        resp.set_text(e.text);
        if (e.token >= 0) resp.add_token_ids(static_cast<uint32_t>(e.token));
        if (e.done) {
          resp.set_prompt_tokens(static_cast<uint32_t>(e.prompt_tokens));
          resp.set_completion_tokens(static_cast<uint32_t>(e.completion_tokens));
          resp.set_cached_prompt_tokens(static_cast<uint32_t>(e.cached_prompt_tokens));
          resp.set_finish_reason(FinishToProto(e.reason));
          resp.set_cached(cached);
        }
        return writer->Write(resp);
      },
      [ctx] { return ctx->IsCancelled(); });
  grpc::Status status = absl::IsCancelled(s) && ctx->IsCancelled()
                            ? grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled")
                            : ToGrpcStatus(s);
  FinishGeneration(ctx, "/quiver.v1.Models/Generate", status, audit_, AuditRequest(g), answer,
                   usage);
  return status;
}

grpc::Status ModelsService::ListModels(grpc::CallbackServerContext* ctx,
                                       const v1::ListModelsRequest*, v1::ListModelsResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  if (embedding_->has_embedder()) {
    const embed::EmbeddingModel& e = embedding_->embedder();
    v1::ModelInfo* m = resp->add_models();
    m->set_name(embedding_->embed_name());
    m->set_kind("embedding");
    m->set_device(std::string(e.device()));
    m->set_dimension(static_cast<uint32_t>(e.dimension()));
    m->set_max_tokens(static_cast<uint32_t>(e.max_tokens()));
  }
  if (generator_ != nullptr) {
    v1::ModelInfo* m = resp->add_models();
    m->set_name(generator_->name());
    m->set_kind("generator");
    m->set_device(std::string(generator_->device()));
    m->set_max_tokens(static_cast<uint32_t>(generator_->context_length()));
  }
  if (embedding_->has_reranker()) {
    const embed::RerankModel& r = embedding_->reranker();
    v1::ModelInfo* m = resp->add_models();
    m->set_name(embedding_->rerank_name());
    m->set_kind("reranker");
    m->set_device(std::string(r.device()));
    m->set_max_tokens(static_cast<uint32_t>(r.max_tokens()));
  }
  return grpc::Status::OK;
}

namespace {

void DocumentToProto(const storage::StoredDocument& d, v1::Document* proto) {
  proto->set_id(d.id);
  proto->set_text(d.text);
  if (!d.metadata.empty()) {
    JsonToStruct(storage::MetadataToJson(d.metadata), proto->mutable_metadata());
  }
  proto->set_chunk_count(d.chunk_count);
  proto->set_updated_unix_ms(d.updated_unix_ms);
}

// Ask's events onto the gRPC stream.
class GrpcAskSink final : public rag::AskSink {
 public:
  explicit GrpcAskSink(ResponseWriter<v1::AskResponse>* writer) : writer_(writer) {}
  bool Sources(const std::vector<rag::Source>& sources) override {
    v1::AskResponse resp;
    v1::AskSources* out = resp.mutable_sources();
    for (const rag::Source& s : sources) {
      v1::AskSource* p = out->add_sources();
      p->set_number(s.number);
      p->set_document_id(s.document_id);
      p->set_chunk(s.chunk);
      p->set_record_id(s.record_id);
      p->set_text(s.text);
      p->set_heading(s.heading);
      p->set_score(s.score);
      p->set_dense_score(s.dense_score);
      p->set_text_score(s.text_score);
      p->set_rerank_score(s.rerank_score);
      p->set_start_byte(s.start_byte);
      p->set_end_byte(s.end_byte);
      if (!s.metadata.empty()) {
        JsonToStruct(storage::MetadataToJson(s.metadata), p->mutable_metadata());
      }
    }
    return writer_->Write(resp);
  }
  bool Token(std::string_view text, int token_id) override {
    v1::AskResponse resp;
    resp.mutable_generation()->set_text(std::string(text));
    if (token_id >= 0) resp.mutable_generation()->add_token_ids(static_cast<uint32_t>(token_id));
    return writer_->Write(resp);
  }
  bool Done(const rag::AskSummary& s) override {
    v1::AskResponse resp;
    v1::AskDone* d = resp.mutable_done();
    d->set_prompt_tokens(s.prompt_tokens);
    d->set_completion_tokens(s.completion_tokens);
    d->set_finish_reason(FinishToProto(s.finish));
    v1::AskTimings* t = d->mutable_timings();
    t->set_embed_ms(s.timings.embed_ms);
    t->set_retrieve_ms(s.timings.retrieve_ms);
    t->set_rerank_ms(s.timings.rerank_ms);
    t->set_pack_ms(s.timings.pack_ms);
    t->set_prefill_ms(s.timings.prefill_ms);
    t->set_decode_ms(s.timings.decode_ms);
    t->set_total_ms(s.timings.total_ms);
    switch (s.cache) {
      case rag::CacheStatus::kMiss:
        d->set_cache(v1::CACHE_STATUS_MISS);
        break;
      case rag::CacheStatus::kExactHit:
        d->set_cache(v1::CACHE_STATUS_EXACT_HIT);
        break;
      case rag::CacheStatus::kSemanticHit:
        d->set_cache(v1::CACHE_STATUS_SEMANTIC_HIT);
        break;
      case rag::CacheStatus::kBypass:
        d->set_cache(v1::CACHE_STATUS_BYPASS);
        break;
    }
    for (uint32_t n : s.cited) d->add_cited(n);
    for (uint32_t n : s.unknown_citations) d->add_unknown_citations(n);
    d->set_model(s.model);
    d->set_cached_prompt_tokens(s.cached_prompt_tokens);
    return writer_->Write(resp);
  }

 private:
  ResponseWriter<v1::AskResponse>* writer_;
};

}  // namespace

grpc::Status RagService::UpsertDocument(grpc::CallbackServerContext* ctx,
                                        const v1::UpsertDocumentRequest* req,
                                        v1::UpsertDocumentResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/true); !denied.ok()) return denied;
  rag::DocumentInput doc;
  doc.id = req->document().id();
  doc.text = req->document().text();
  if (req->document().has_metadata()) {
    auto md = storage::MetadataFromJson(StructToJson(req->document().metadata()));
    if (!md.ok()) return ToGrpcStatus(md.status());
    doc.metadata = *std::move(md);
  }
  auto r = pipeline_->UpsertDocument(req->collection(), req->namespace_(), std::move(doc));
  if (!r.ok()) return ToGrpcStatus(r.status());
  resp->set_chunk_count(r->chunk_count);
  resp->set_replaced_chunk_count(r->replaced_chunk_count);
  resp->set_tokens(r->tokens);
  return grpc::Status::OK;
}

grpc::Status RagService::GetDocument(grpc::CallbackServerContext* ctx,
                                     const v1::GetDocumentRequest* req,
                                     v1::GetDocumentResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  auto d = pipeline_->GetDocument(req->collection(), req->namespace_(), req->id());
  if (!d.ok()) return ToGrpcStatus(d.status());
  DocumentToProto(*d, resp->mutable_document());
  return grpc::Status::OK;
}

grpc::Status RagService::ListDocuments(grpc::CallbackServerContext* ctx,
                                       const v1::ListDocumentsRequest* req,
                                       v1::ListDocumentsResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  auto r = pipeline_->ListDocuments(req->collection(), req->namespace_(), req->prefix(),
                                    req->limit(), req->pagination_token());
  if (!r.ok()) return ToGrpcStatus(r.status());
  for (const storage::StoredDocument& d : r->documents) DocumentToProto(d, resp->add_documents());
  resp->set_next_pagination_token(r->next_pagination_token);
  return grpc::Status::OK;
}

grpc::Status RagService::DeleteDocument(grpc::CallbackServerContext* ctx,
                                        const v1::DeleteDocumentRequest* req,
                                        v1::DeleteDocumentResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/true); !denied.ok()) return denied;
  auto n = pipeline_->DeleteDocument(req->collection(), req->namespace_(), req->id());
  if (!n.ok()) return ToGrpcStatus(n.status());
  resp->set_deleted_chunk_count(*n);
  return grpc::Status::OK;
}

grpc::Status RagService::Ask(grpc::CallbackServerContext* ctx, const v1::AskRequest* req,
                             ResponseWriter<v1::AskResponse>* writer) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  rag::AskRequest r;
  r.collection = req->collection();
  r.ns = req->namespace_();
  r.question = req->question();
  r.top_k = req->top_k();
  r.candidate_k = req->candidate_k();
  if (req->has_filter()) r.filter = StructToJson(req->filter());
  r.rerank = req->rerank();
  switch (req->mode()) {
    case v1::RETRIEVAL_MODE_DENSE:
      r.mode = rag::RetrievalMode::kDense;
      break;
    case v1::RETRIEVAL_MODE_TEXT:
      r.mode = rag::RetrievalMode::kText;
      break;
    case v1::RETRIEVAL_MODE_HYBRID:
      r.mode = rag::RetrievalMode::kHybrid;
      break;
    default:
      r.mode = rag::RetrievalMode::kAuto;
  }
  const v1::SamplingParams& sp = req->sampling();
  r.generation.model = req->llm_model();
  r.generation.temperature = sp.temperature();
  r.generation.top_k = sp.top_k();
  r.generation.top_p = sp.top_p();
  r.generation.repetition_penalty = sp.repetition_penalty();
  r.generation.seed = sp.seed();
  r.generation.max_tokens = sp.max_tokens();
  r.generation.stop.assign(sp.stop().begin(), sp.stop().end());
  r.system_prompt = req->system_prompt();
  r.prompt_template = req->prompt_template();
  for (const v1::ChatMessage& m : req->history()) r.history.push_back({m.role(), m.content()});
  r.context_tokens = req->context_tokens();
  r.no_cache = req->no_cache();
  r.cache_nondeterministic = req->cache_nondeterministic();
  GrpcAskSink grpc_sink(writer);
  RecordingAskSink sink(&grpc_sink);
  absl::Status s = pipeline_->Ask(r, &sink, [ctx] { return ctx->IsCancelled(); });
  grpc::Status status = ToGrpcStatus(s);
  FinishGeneration(ctx, "/quiver.v1.Rag/Ask", status, audit_, AuditRequest(r), sink.answer(),
                   sink.usage());
  return status;
}

// ---- Admin ----------------------------------------------------------------

grpc::Status AdminService::Health(grpc::CallbackServerContext*, const v1::HealthRequest*,
                                  v1::HealthResponse* resp) {
  resp->set_serving(true);
  for (const std::string& name : engine_->damaged_collections()) {
    resp->add_damaged_collections(name);
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::ServerInfo(grpc::CallbackServerContext* ctx,
                                      const v1::ServerInfoRequest*, v1::ServerInfoResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  const db::EngineOptions& o = engine_->options();
  resp->set_version(facts_.version);
  resp->set_data_dir(o.store.path);
  resp->set_uptime_ms(absl::ToInt64Milliseconds(absl::Now() - facts_.started));
  resp->set_sync_policy(facts_.sync_policy);
  resp->set_cpu_kernels(facts_.cpu_kernels);
  resp->set_threads(facts_.threads);
#ifdef QUIVER_HAVE_CUDA
  resp->set_cuda_compiled(true);
#endif
  v1::Limits* l = resp->mutable_limits();
  l->set_max_dimension(storage::kMaxDimension);
  l->set_max_batch_records(o.limits.max_batch_records);
  l->set_max_top_k(o.limits.max_top_k);
  l->set_max_id_bytes(o.limits.max_id_bytes);
  l->set_max_metadata_bytes(o.limits.max_metadata_bytes);
  l->set_max_message_bytes(o.limits.max_message_bytes);
  l->set_max_text_bytes(o.limits.max_text_bytes);
  l->set_max_sparse_entries(o.limits.max_sparse_entries);
  l->set_max_fetch_ids(o.limits.max_fetch_ids);
  l->set_max_list_limit(o.limits.max_list_limit);
  l->set_max_embed_inputs(static_cast<uint32_t>(facts_.max_embed_inputs));
  l->set_max_document_bytes(o.limits.max_document_bytes);
  l->set_max_document_chunks(o.limits.max_document_chunks);
  const MemoryBudget& budget = engine_->memory_budget();
  v1::MemoryBudget* m = resp->mutable_memory();
  m->set_budget_bytes(budget.total_limit());
  for (size_t i = 0; i < kMemoryParts; ++i) {
    if (budget.part_limits()[i] > 0) {
      (*m->mutable_part_limit_bytes())[std::string(MemoryPartName(static_cast<MemoryPart>(i)))] =
          budget.part_limits()[i];
    }
  }
  MemoryToProto(budget.used(), m->mutable_used());
  m->set_resident_bytes(ResidentBytes());
  return grpc::Status::OK;
}

grpc::Status AdminService::Snapshot(grpc::CallbackServerContext* ctx,
                                    const v1::SnapshotRequest* req, v1::SnapshotResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/true); !denied.ok()) return denied;
  const uint64_t count = engine_->total_record_count();
  auto path = engine_->Snapshot(req->name());
  if (!path.ok()) return ToGrpcStatus(path.status());
  resp->set_path(*path);
  resp->set_record_count(count);
  return grpc::Status::OK;
}

grpc::Status AdminService::ListSnapshots(grpc::CallbackServerContext* ctx,
                                         const v1::ListSnapshotsRequest*,
                                         v1::ListSnapshotsResponse* resp) {
  if (grpc::Status denied = Guard(ctx, /*write=*/false); !denied.ok()) return denied;
  for (const db::Engine::SnapshotInfo& info : engine_->ListSnapshots()) {
    v1::SnapshotInfo* out = resp->add_snapshots();
    out->set_name(info.name);
    out->set_path(info.path);
    out->set_created_unix_ms(info.created_unix_ms);
    out->set_bytes(info.bytes);
  }
  return grpc::Status::OK;
}

}  // namespace quiver::server
