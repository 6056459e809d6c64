// Engine: partial updates of one record (re-embedding changed text).
#include "absl/status/statusor.h"
#include "common/log.h"
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
using storage::Record;
using storage::StoredRecord;

absl::Status Engine::Update(std::string_view collection, std::string_view ns, UpdateSpec spec) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  if (spec.id.empty()) return absl::InvalidArgumentError("update needs a record id");
  std::optional<storage::Metadata> set_metadata;
  if (spec.set_metadata) {
    ASSIGN_OR_RETURN(set_metadata, storage::MetadataFromJson(*spec.set_metadata));
  }
  // The update's changes to a record's text fields (metadata, text).
  auto apply_text = [&](Record* r) {
    if (set_metadata) {
      for (const auto& [key, value] : *set_metadata) r->metadata.insert_or_assign(key, value);
    }
    if (spec.text) r->text = *spec.text;
  };
  // The record with its new text, re-embedded: the embedding of a text
  // whose vector the model makes (none when it has none or is empty).
  auto embed = [&](Record r) -> absl::StatusOr<std::vector<float>> {
    r.values.clear();
    std::vector<Record> one;
    one.push_back(std::move(r));
    RETURN_IF_ERROR(EmbedMissingVectors(*c, &one));
    return std::move(one[0].values);
  };
  // When the text behind the vector changes, embed it before taking the
  // write lock (the model is slow; writers should not wait on it). Checked
  // again under the lock: a concurrent write that changed the text means
  // embedding again there.
  std::string embedded_text;
  std::vector<float> embedded;
  if (!spec.values && !c->config().embedding_model.empty() && (spec.text || set_metadata)) {
    ASSIGN_OR_RETURN(std::optional<StoredRecord> before, store_->Get(c->meta().id, ns, spec.id));
    if (before) {
      Record r = before->record;
      const std::string old_text(c->TextOf(r));
      apply_text(&r);
      if (c->TextOf(r) != old_text) {
        embedded_text = std::string(c->TextOf(r));
        ASSIGN_OR_RETURN(embedded, embed(std::move(r)));
      }
    }
  }
  MutexLock wl(&c->write_mu);
  if (c->dropped) return CollectionGone(collection);
  std::optional<uint64_t> internal;
  {
    ReaderMutexLock l(&c->mu);
    internal = c->LabelOf(ns, spec.id);
  }
  if (!internal) {
    return absl::NotFoundError(StrCat("record ", Quoted(spec.id), " does not exist in namespace ",
                                      Quoted(ns), " of collection ", Quoted(collection)));
  }
  ASSIGN_OR_RETURN(std::optional<StoredRecord> stored, store_->Get(c->meta().id, ns, spec.id));
  if (!stored) return absl::InternalError("record is indexed but missing from the store");
  Record& r = stored->record;
  bool new_vector = spec.values.has_value();
  const std::string old_text(c->TextOf(r));
  if (spec.values) r.values = std::move(*spec.values);
  if (spec.sparse) r.sparse = std::move(*spec.sparse);
  apply_text(&r);
  if (!new_vector && !c->config().embedding_model.empty() && c->TextOf(r) != old_text) {
    // The text behind the vector changed: its new embedding (made above
    // unless a concurrent write changed the text since).
    std::vector<float> values;
    if (!embedded.empty() && c->TextOf(r) == embedded_text) {
      values = std::move(embedded);
    } else {
      ASSIGN_OR_RETURN(values, embed(r));
    }
    if (!values.empty()) {
      r.values = std::move(values);
      new_vector = true;
    }
  }
  RETURN_IF_ERROR(ValidateRecord(options_.limits, c->config(), &r));
  ASSIGN_OR_RETURN(MemoryReservation room,
                   ReserveWrite(*c, {&r, 1},
                                StrCat("updating record ", Quoted(spec.id), " in collection ",
                                       Quoted(collection))));
  if (new_vector) stored->label = c->next_label++;
  storage::RecordBatch batch = store_->NewBatch();
  batch.Put(c->meta().id, ns, *stored);
  RETURN_IF_ERROR(store_->Write(&batch));
  if (new_vector) {
    std::vector<Record> one;
    one.push_back(std::move(r));
    ApplyWrites(*c, ns, {stored->label}, std::move(one));
  } else {
    NamespaceState* state;
    {
      MutexLock l(&c->mu);
      state = c->FindNamespace(ns);
      c->ApplyFields(state, *internal, std::move(r));
    }
    MaintainIndex(*c, ns, state);
    Recharge(*c);
  }
  return absl::OkStatus();
}

}  // namespace quiver::db
