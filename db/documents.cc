// Engine: the document path's storage side. A document (its source text and
// metadata) and its chunk records are written, replaced and deleted in one
// atomic store write each, so neither readers nor a restart after kill -9
// ever see chunks of two versions mixed. Cutting and embedding the chunks is
// the caller's (rag/).
#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/coding.h"
#include "common/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "db/collection.h"
#include "db/engine.h"
#include "db/internal.h"
#include "db/validate.h"

namespace quiver::db {

using internal::CollectionGone;
using internal::Quoted;
using storage::ChunkId;
using storage::StoredDocument;

namespace {

absl::Status ValidateDocumentId(std::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError("document id must not be empty");
  if (id.size() > kMaxDocumentIdBytes) {
    return absl::InvalidArgumentError(StrCat("document id of ", id.size(),
                                             " bytes exceeds the limit of ", kMaxDocumentIdBytes,
                                             " bytes"));
  }
  if (!IsValidUtf8(id)) return absl::InvalidArgumentError("document id is not valid UTF-8");
  for (char ch : id) {
    if (static_cast<unsigned char>(ch) < 0x20) {
      return absl::InvalidArgumentError(
          StrCat("document id ", Quoted(id), " contains a control character"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PutDocumentResult> Engine::PutDocument(std::string_view collection,
                                                      std::string_view ns, DocumentWrite doc) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  RETURN_IF_ERROR(ValidateDocumentId(doc.id));
  const Limits& lim = options_.limits;
  if (doc.text.empty()) {
    return absl::InvalidArgumentError(StrCat("document ", Quoted(doc.id), " has no text"));
  }
  if (doc.text.size() > lim.max_document_bytes) {
    return absl::InvalidArgumentError(StrCat("document ", Quoted(doc.id), " is ", doc.text.size(),
                                             " bytes; the limit is ", lim.max_document_bytes,
                                             " (quiverd --max_document_bytes)"));
  }
  if (!IsValidUtf8(doc.text)) {
    return absl::InvalidArgumentError(
        StrCat("text of document ", Quoted(doc.id), " is not valid UTF-8"));
  }
  if (storage::MetadataJsonBytes(doc.metadata) > lim.max_metadata_bytes) {
    return absl::InvalidArgumentError(StrCat("metadata of document ", Quoted(doc.id), " exceeds ",
                                             lim.max_metadata_bytes, " bytes"));
  }
  if (doc.chunks.empty()) {
    return absl::InvalidArgumentError(StrCat("document ", Quoted(doc.id), " has no chunks"));
  }
  if (doc.chunks.size() > lim.max_document_chunks) {
    return absl::InvalidArgumentError(StrCat(
        "document ", Quoted(doc.id), " makes ", doc.chunks.size(), " chunks; the limit is ",
        lim.max_document_chunks, " (quiverd --max_document_chunks, or larger chunk_tokens)"));
  }
  for (uint32_t i = 0; i < doc.chunks.size(); ++i) {
    storage::Record& chunk = doc.chunks[i];
    if (chunk.id != ChunkId(doc.id, i)) {
      return absl::InvalidArgumentError(StrCat("chunk ", i, " of document ", Quoted(doc.id),
                                               " must have id ", Quoted(ChunkId(doc.id, i))));
    }
    RETURN_IF_ERROR(ValidateRecord(lim, c->config(), &chunk));
  }

  MutexLock wl(&c->write_mu);
  if (c->dropped) return CollectionGone(collection);
  ASSIGN_OR_RETURN(MemoryReservation room,
                   ReserveWrite(*c, doc.chunks,
                                StrCat("writing the ", doc.chunks.size(), " chunks of document ",
                                       Quoted(doc.id), " into collection ", Quoted(collection))));
  ASSIGN_OR_RETURN(std::optional<StoredDocument> old,
                   store_->GetDocument(c->meta().id, ns, doc.id));
  PutDocumentResult result;
  result.chunk_count = static_cast<uint32_t>(doc.chunks.size());
  result.replaced_chunk_count = old ? old->chunk_count : 0;

  storage::RecordBatch batch = store_->NewBatch();
  std::vector<uint64_t> labels(doc.chunks.size());
  storage::StoredRecord stored;
  for (size_t i = 0; i < doc.chunks.size(); ++i) {
    labels[i] = c->next_label++;
    stored.label = labels[i];
    stored.record = std::move(doc.chunks[i]);
    batch.Put(c->meta().id, ns, stored);
    doc.chunks[i] = std::move(stored.record);
  }
  std::vector<std::string> dropped_chunks;
  for (uint32_t i = result.chunk_count; i < result.replaced_chunk_count; ++i) {
    dropped_chunks.push_back(ChunkId(doc.id, i));
    batch.Delete(c->meta().id, ns, dropped_chunks.back());
  }
  StoredDocument header;
  header.id = doc.id;
  header.text = std::move(doc.text);
  header.metadata = std::move(doc.metadata);
  header.chunk_count = result.chunk_count;
  header.updated_unix_ms = absl::ToUnixMillis(absl::Now());
  batch.PutDocument(c->meta().id, ns, header);
  RETURN_IF_ERROR(store_->Write(&batch));

  ApplyWrites(*c, ns, labels, std::move(doc.chunks));
  if (!dropped_chunks.empty()) {
    {
      MutexLock l(&c->mu);
      for (const std::string& id : dropped_chunks) c->ApplyDelete(ns, id);
    }
    AfterDeletes(*c, ns);
  }
  return result;
}

absl::StatusOr<StoredDocument> Engine::GetDocument(std::string_view collection, std::string_view ns,
                                                   std::string_view id) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  RETURN_IF_ERROR(ValidateDocumentId(id));
  ASSIGN_OR_RETURN(std::optional<StoredDocument> doc, store_->GetDocument(c->meta().id, ns, id));
  if (!doc) {
    return absl::NotFoundError(StrCat("collection ", Quoted(collection), " has no document ",
                                      Quoted(id), ns.empty() ? "" : " in namespace ",
                                      ns.empty() ? "" : Quoted(ns)));
  }
  return *std::move(doc);
}

absl::StatusOr<ListDocumentsResult> Engine::ListDocuments(std::string_view collection,
                                                          std::string_view ns,
                                                          std::string_view prefix, uint32_t limit,
                                                          std::string_view pagination_token) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  if (limit == 0) limit = 100;
  if (limit > options_.limits.max_list_limit) {
    return absl::InvalidArgumentError(
        StrCat("list limit ", limit, " exceeds ", options_.limits.max_list_limit));
  }
  std::string start_after;
  if (!pagination_token.empty() &&
      !absl::WebSafeBase64Unescape(std::string(pagination_token), &start_after)) {
    return absl::InvalidArgumentError(
        "pagination token is malformed; pass one a response returned");
  }
  ASSIGN_OR_RETURN(std::vector<StoredDocument> docs,
                   store_->ListDocuments(c->meta().id, ns, prefix, start_after, limit + 1));
  ListDocumentsResult out;
  if (docs.size() > limit) {
    docs.resize(limit);
    out.next_pagination_token = absl::WebSafeBase64Escape(docs.back().id);
  }
  for (StoredDocument& d : docs) d.text.clear();
  out.documents = std::move(docs);
  return out;
}

absl::StatusOr<uint32_t> Engine::DeleteDocument(std::string_view collection, std::string_view ns,
                                                std::string_view id) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  RETURN_IF_ERROR(ValidateDocumentId(id));
  MutexLock wl(&c->write_mu);
  if (c->dropped) return CollectionGone(collection);
  ASSIGN_OR_RETURN(std::optional<StoredDocument> doc, store_->GetDocument(c->meta().id, ns, id));
  if (!doc) {
    return absl::NotFoundError(
        StrCat("collection ", Quoted(collection), " has no document ", Quoted(id)));
  }
  storage::RecordBatch batch = store_->NewBatch();
  std::vector<std::string> chunks;
  for (uint32_t i = 0; i < doc->chunk_count; ++i) {
    chunks.push_back(ChunkId(id, i));
    batch.Delete(c->meta().id, ns, chunks.back());
  }
  batch.DeleteDocument(c->meta().id, ns, id);
  RETURN_IF_ERROR(store_->Write(&batch));
  {
    MutexLock l(&c->mu);
    for (const std::string& chunk : chunks) c->ApplyDelete(ns, chunk);
  }
  AfterDeletes(*c, ns);
  return doc->chunk_count;
}

absl::StatusOr<uint64_t> Engine::CollectionEpoch(std::string_view collection) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  return store_->CollectionEpoch(c->meta().id);
}

}  // namespace quiver::db
