// The RAG pipeline: documents in (cut by the collection's embedding model's
// tokenizer, embedded in batches through the embedding service's worker,
// stored with their chunks by db/), questions answered (embed -> retrieve ->
// rerank -> pack -> generate, streamed with numbered sources, citations,
// usage and per-stage timings), with the answer cache in front of
// generation. Transports call this; it calls db::Engine,
// embed::EmbeddingService and llm::Generator. Thread-safe.
#ifndef QUIVER_RAG_PIPELINE_H_
#define QUIVER_RAG_PIPELINE_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "db/engine.h"
#include "embed/service.h"
#include "llm/generator.h"
#include "rag/answer_cache.h"
#include "rag/types.h"

namespace quiver::rag {

// The prompt when a request brings none: sources numbered [1]..[n].
inline constexpr char kDefaultTemplate[] =
    "Answer the question using only the sources below. Cite the sources you use by their "
    "numbers in square brackets, like [1]. If the sources do not answer the question, say "
    "so.\n\nSources:\n{context}\nQuestion: {question}\nAnswer:";
inline constexpr char kDefaultSystemPrompt[] =
    "You are a helpful assistant that answers questions from the sources you are given and "
    "cites them by number.";

struct PipelineOptions {
  // Chunks embedded per call to the embedding service (its worker batches
  // calls from many requests together).
  size_t embed_batch = 64;
};

class Pipeline {
 public:
  // `generator` and `cache` may be null (no generation; no cache). None is
  // owned; all must outlive the pipeline.
  Pipeline(db::Engine* engine, embed::EmbeddingService* embeddings, llm::Generator* generator,
           AnswerCache* cache, PipelineOptions options = {});

  // Cuts, embeds and stores `doc`, replacing any earlier version and all of
  // its chunks atomically. FAILED_PRECONDITION when the collection is bound
  // to no embedding model or one this server has not loaded, or its
  // chunk_tokens exceed what the model embeds; INVALID_ARGUMENT for bad
  // input (reserved metadata keys among them); the engine's errors.
  absl::StatusOr<UpsertDocumentResult> UpsertDocument(std::string_view collection,
                                                      std::string_view ns, DocumentInput doc);
  absl::StatusOr<storage::StoredDocument> GetDocument(std::string_view collection,
                                                      std::string_view ns, std::string_view id);
  absl::StatusOr<db::ListDocumentsResult> ListDocuments(std::string_view collection,
                                                        std::string_view ns,
                                                        std::string_view prefix, uint32_t limit,
                                                        std::string_view pagination_token);
  absl::StatusOr<uint32_t> DeleteDocument(std::string_view collection, std::string_view ns,
                                          std::string_view id);

  // Answers `request` through `sink` (see AskSink). Request errors come back
  // before any event; with no generator the sources are sent and then
  // FAILED_PRECONDITION. `gone` (may be null) is asked between stages and by
  // the scheduler before every step; when it turns true, or a sink call
  // returns false, work stops and CANCELLED comes back.
  absl::Status Ask(const AskRequest& request, AskSink* sink, std::function<bool()> gone = nullptr);

  // Models.Generate: `request` through the generator, with the answer
  // cache's exact layer when `use_cache` and the request is deterministic
  // (temperature 0 or a fixed seed): one seen before gets its stored text
  // as a single final event (`cached` true, no token id). `on_event` gets
  // every event in order, the last with done set; when it returns false the
  // generation stops and CANCELLED comes back. FAILED_PRECONDITION without
  // a generator; the generator's errors.
  absl::Status Generate(
      const llm::GenerationRequest& request, bool use_cache,
      const std::function<bool(const llm::TokenEvent& event, bool cached)>& on_event,
      std::function<bool()> gone = nullptr);

  // Ask's retrieval alone (embed, retrieve, rerank; no cache, packing or
  // generation): the ranked candidates, for evaluation and tools.
  absl::StatusOr<Retrieval> Retrieve(const AskRequest& request);

  AnswerCache* cache() { return cache_; }

 private:
  // A checked request with its defaults applied.
  struct Plan {
    uint32_t top_k = 0, candidate_k = 0;
    std::string tmpl;
    RetrievalMode mode = RetrievalMode::kAuto;
    embed::EmbeddingService* emb = nullptr;  // Dense and hybrid modes.
  };
  absl::StatusOr<Plan> MakePlan(const AskRequest& request);
  absl::StatusOr<std::vector<float>> EmbedQuestion(const AskRequest& request, const Plan& plan,
                                                   Timings* timings);
  // Retrieves candidate_k candidates and reranks them when asked.
  absl::StatusOr<std::vector<Source>> Search(const AskRequest& request, const Plan& plan,
                                             const std::vector<float>& question_vector,
                                             Timings* timings,
                                             const std::function<bool()>& is_gone);
  absl::StatusOr<embed::EmbeddingService*> EmbedderFor(const storage::CollectionConfig& config);

  db::Engine* const engine_;
  embed::EmbeddingService* const embeddings_;
  llm::Generator* const generator_;
  AnswerCache* const cache_;
  const PipelineOptions options_;
};

// Source numbers an answer cites: "[2]", "[1, 3]", "[1][2]", in order of
// first use, and separately the cited numbers outside 1..source_count.
void FindCitations(std::string_view answer, uint32_t source_count, std::vector<uint32_t>* cited,
                   std::vector<uint32_t>* unknown);

}  // namespace quiver::rag

#endif  // QUIVER_RAG_PIPELINE_H_
