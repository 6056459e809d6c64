// Engine: query planning and search.
#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "ann/vector_index.h"
#include "common/coding.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "db/collection.h"
#include "db/engine.h"
#include "db/fusion.h"
#include "db/internal.h"
#include "db/validate.h"

namespace quiver::db {

using internal::NamespaceNotFound;
using internal::Quoted;
using storage::CollectionConfig;
using storage::StoredRecord;

std::vector<ann::Hit> Engine::MergeHits(std::vector<ann::Hit> a, const std::vector<ann::Hit>& b,
                                        size_t top_k) {
  // A label moving into the graph may briefly be in both lists.
  absl::flat_hash_set<uint64_t> seen;
  ann::TopK top(top_k);
  for (const std::vector<ann::Hit>* list : {static_cast<const std::vector<ann::Hit>*>(&a), &b}) {
    for (const ann::Hit& h : *list) {
      if (seen.insert(h.label).second) top.Push(h.label, h.score);
    }
  }
  return top.Take();
}

double Engine::EstimateSelectivity(const NamespaceState& state, const storage::Filter& filter) {
  // The hash map's iteration order is unrelated to insertion order, so its
  // first entries are a fair sample.
  size_t seen = 0, kept = 0;
  for (const auto& [label, entry] : state.entries) {
    kept += filter.Matches(entry.metadata);
    if (++seen == kSelectivitySample) break;
  }
  return seen == 0 ? 1.0 : static_cast<double>(kept) / seen;
}

absl::StatusOr<QueryResult> Engine::Query(std::string_view collection, const QueryRequest& req_in) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  c->counters.queries.fetch_add(1, std::memory_order_relaxed);
  RETURN_IF_ERROR(ValidateNamespace(req_in.ns));
  const CollectionConfig& config = c->config();
  QueryRequest req = req_in;
  const Limits& lim = options_.limits;
  if (req.embed_text && !config.embedding_model.empty() && !req.text.empty() &&
      req.vector.empty() && req.id.empty()) {
    // Text on a collection bound to an embedding model is embedded for the
    // dense search (and, with a text index, also searched by BM25: hybrid).
    if (req.text.size() > lim.max_text_bytes || !IsValidUtf8(req.text)) {
      return absl::InvalidArgumentError(
          StrCat("query text must be valid UTF-8 of at most ", lim.max_text_bytes, " bytes"));
    }
    ASSIGN_OR_RETURN(TextEmbedder * embedder, EmbedderFor(config));
    ASSIGN_OR_RETURN(auto vectors, embedder->Embed({req.text}));
    req.vector = std::move(vectors[0]);
    if (c->analyzer() == nullptr) req.text.clear();
  }
  if (req.top_k < 1 || req.top_k > lim.max_top_k) {
    return absl::InvalidArgumentError(
        StrCat("top_k is ", req.top_k, "; it must be in 1..", lim.max_top_k));
  }
  if (!req.vector.empty() && !req.id.empty()) {
    return absl::InvalidArgumentError("a query takes a vector or an id, not both");
  }
  const bool dense = !req.vector.empty() || !req.id.empty();
  const bool sparse = !req.sparse.empty() || !req.sparse.values.empty();
  const bool text = !req.text.empty();
  const int lists = dense + sparse + text;
  if (lists == 0) {
    return absl::InvalidArgumentError(
        "a query needs a vector, an id, a sparse_vector or text (several make a hybrid query)");
  }
  std::vector<std::string> text_terms;
  if (text) {
    if (c->analyzer() == nullptr) {
      return absl::FailedPreconditionError(
          StrCat("collection ", Quoted(config.name),
                 " has no text index; create it with text.enabled to query by text"));
    }
    if (req.text.size() > lim.max_text_bytes) {
      return absl::InvalidArgumentError(
          StrCat("query text is ", req.text.size(), " bytes; the limit is ", lim.max_text_bytes));
    }
    ASSIGN_OR_RETURN(text_terms, c->analyzer()->Analyze(req.text));
  }
  if (sparse) RETURN_IF_ERROR(ValidateSparse(lim, "query sparse_vector", &req.sparse));
  if (!req.vector.empty()) RETURN_IF_ERROR(ValidateDense(config, "query vector", req.vector));
  if (req.ef_search > 10000) {
    return absl::InvalidArgumentError(
        StrCat("ef_search is ", req.ef_search, "; it must be in 0..10000"));
  }
  HybridSpec& h = req.hybrid;
  if (!(h.rrf_k > 0) || !std::isfinite(h.rrf_k)) {
    return absl::InvalidArgumentError(StrCat("hybrid rrf_k is ", h.rrf_k, "; it must be > 0"));
  }
  for (float w : {h.dense_weight, h.sparse_weight, h.text_weight}) {
    if (!(w >= 0) || !std::isfinite(w)) {
      return absl::InvalidArgumentError(StrCat("hybrid weights must be finite and >= 0; got ", w));
    }
  }
  if (h.candidate_depth > lim.max_top_k) {
    return absl::InvalidArgumentError(StrCat("hybrid candidate_depth is ", h.candidate_depth,
                                             "; it must be in 0..", lim.max_top_k));
  }
  if (h.dense_weight == 0 && h.sparse_weight == 0 && h.text_weight == 0) {
    h.dense_weight = h.sparse_weight = h.text_weight = 1;
  }
  // One list answers with its own scores; several are fused from deeper lists.
  size_t depth = req.top_k;
  if (lists > 1) {
    depth = h.candidate_depth > 0 ? h.candidate_depth : std::max<size_t>(4 * req.top_k, 40);
    depth = std::clamp<size_t>(depth, req.top_k, lim.max_top_k);
  }
  storage::Filter filter;
  if (req.filter) {
    ASSIGN_OR_RETURN(filter, storage::Filter::Parse(*req.filter));
  }

  QueryResult out;
  out.exact = !dense;
  std::vector<RankedList> ranked;
  {
    ReaderMutexLock l(&c->mu);
    const NamespaceState* state = c->FindNamespace(req.ns);
    if (state == nullptr) {
      if (!req.ns.empty()) return NamespaceNotFound(*c, req.ns);
      if (!req.id.empty()) {
        return absl::NotFoundError(StrCat("query id ", Quoted(req.id), " does not exist"));
      }
      return out;
    }
    text::LabelFilter keep = [&](uint64_t label) {
      auto it = state->entries.find(label);
      return it != state->entries.end() && filter.Matches(it->second.metadata);
    };
    const text::LabelFilter* keep_ptr = filter.MatchesAll() ? nullptr : &keep;
    auto to_ranked = [&](std::string source, float weight, const std::vector<ann::Hit>& hits) {
      RankedList list{std::move(source), weight, {}};
      for (const ann::Hit& d : hits) {
        auto it = state->entries.find(d.label);
        if (it != state->entries.end()) list.hits.emplace_back(it->second.id, d.score);
      }
      ranked.push_back(std::move(list));
    };
    if (dense) {
      RankedList list{"dense", h.dense_weight, {}};
      RETURN_IF_ERROR(SearchVectors(*c, *state, req, filter, depth, &out, &list.hits));
      ranked.push_back(std::move(list));
    }
    if (sparse) {
      // Dot product over the postings (MaxScore-pruned, exact).
      to_ranked("sparse", h.sparse_weight,
                state->sparse->Search(req.sparse.indices, req.sparse.values, depth, keep_ptr));
      out.scanned_count += state->sparse->doc_count();
    }
    if (text) {
      // BM25 over the namespace's text index (MaxScore-pruned, exact).
      to_ranked("text", h.text_weight, state->bm25->Search(text_terms, depth, keep_ptr));
      out.scanned_count += state->bm25->doc_count();
    }
  }
  std::vector<Match> matches;
  if (lists == 1) {
    uint32_t rank = 0;
    for (auto& [id, score] : ranked[0].hits) {
      Match m;
      m.id = std::move(id);
      m.score = score;
      m.explanation.push_back({ranked[0].source, ++rank, score});
      matches.push_back(std::move(m));
    }
  } else {
    const auto fusion = h.fusion;
    matches = Fuse(ranked, fusion, h.rrf_k, req.top_k);
  }
  return FillMatches(*c, req, std::move(matches), std::move(out));
}

absl::Status Engine::SearchVectors(const Collection& c, const NamespaceState& state_ref,
                                   const QueryRequest& req, const storage::Filter& filter,
                                   size_t top_k, QueryResult* result,
                                   std::vector<RankedHit>* hit_ids_out) {
  const NamespaceState* state = &state_ref;
  QueryResult& out = *result;
  std::vector<RankedHit>& hit_ids = *hit_ids_out;
  std::vector<ann::Hit> hits;
  {
    ann::LabelFilter known = [&](uint64_t label) { return state->entries.contains(label); };
    std::vector<float> query = req.vector;
    if (!req.id.empty()) {
      if (!state->label_of.contains(req.id)) {
        return absl::NotFoundError(
            StrCat("query id ", Quoted(req.id), " does not exist in namespace ", Quoted(req.ns)));
      }
      ASSIGN_OR_RETURN(std::optional<StoredRecord> stored,
                       store_->Get(c.meta().id, req.ns, req.id));
      if (!stored) return absl::InternalError("record is indexed but missing from the store");
      query = std::move(stored->record.values);
    }
    ann::LabelFilter keep = [&](uint64_t label) {
      auto it = state->entries.find(label);
      return it != state->entries.end() && filter.Matches(it->second.metadata);
    };
    ann::SearchParams params;
    params.top_k = top_k;
    params.ef = req.ef_search;
    params.filter = filter.MatchesAll() ? nullptr : &keep;
    params.pool = &search_pool_;
    uint64_t distances = 0;
    params.distances = &distances;
    const ann::VectorIndex& index = *state->index;
    const size_t ef =
        std::max<size_t>(req.ef_search != 0 ? req.ef_search : c.config().hnsw.ef_search, top_k);
    out.exact = req.exact || !index.concurrent_writes() ||
                (!filter.MatchesAll() &&
                 EstimateSelectivity(*state, filter) < ExactScanBelow(state->entries.size(), ef));
    auto run = [&] {
      hits = out.exact ? index.SearchExact(query, params) : index.Search(query, params);
      if (state->catchup != nullptr) {
        // Records not in the graph yet (restart catch-up): exact, merged.
        hits = MergeHits(std::move(hits), state->catchup->Search(query, params), top_k);
      }
      hit_ids.clear();
      for (const ann::Hit& h : hits) {
        auto it = state->entries.find(h.label);
        if (it != state->entries.end()) hit_ids.emplace_back(it->second.id, h.score);
      }
    };
    run();
    // A concurrent index may hold labels of an insert still in flight (not
    // in the maps yet): they are dropped above. If that left top_k short,
    // search again, skipping them during the walk.
    if (params.filter == nullptr && hit_ids.size() < hits.size() && hit_ids.size() < top_k) {
      params.filter = &known;
      run();
    }
    out.scanned_count = out.exact ? index.size() : distances;
    if (state->catchup != nullptr) out.scanned_count += state->catchup->size();
  }
  return absl::OkStatus();
}

absl::StatusOr<QueryResult> Engine::FillMatches(const Collection& c, const QueryRequest& req,
                                                std::vector<Match> matches, QueryResult out) {
  out.matches.reserve(matches.size());
  for (Match& m : matches) {
    if (req.include_values || req.include_metadata) {
      ASSIGN_OR_RETURN(std::optional<StoredRecord> stored, store_->Get(c.meta().id, req.ns, m.id));
      if (!stored) continue;  // Deleted since the search: leave it out.
      if (req.include_values) {
        m.values = std::move(stored->record.values);
        m.sparse = std::move(stored->record.sparse);
      }
      if (req.include_metadata) {
        m.metadata = std::move(stored->record.metadata);
        m.text = std::move(stored->record.text);
      }
    }
    out.matches.push_back(std::move(m));
  }
  return out;
}

}  // namespace quiver::db
