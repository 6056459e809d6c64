// The RAG pipeline's domain types: what a transport converts to and from.
#ifndef QUIVER_RAG_TYPES_H_
#define QUIVER_RAG_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "llm/chat_template.h"
#include "llm/generator.h"
#include "llm/scheduler.h"
#include "storage/metadata.h"

namespace quiver::rag {

// Metadata keys the document path sets on every chunk record; a document's
// own metadata may not use them.
inline constexpr char kDocumentIdKey[] = "document_id";
inline constexpr char kChunkKey[] = "chunk";
inline constexpr char kStartByteKey[] = "start_byte";
inline constexpr char kEndByteKey[] = "end_byte";
inline constexpr char kHeadingKey[] = "heading";

struct DocumentInput {
  std::string id;
  std::string text;
  storage::Metadata metadata;
};

struct UpsertDocumentResult {
  uint32_t chunk_count = 0;
  uint32_t replaced_chunk_count = 0;
  uint64_t tokens = 0;
};

enum class RetrievalMode { kAuto, kDense, kText, kHybrid };
enum class CacheStatus { kMiss, kExactHit, kSemanticHit, kBypass };
std::string_view CacheStatusName(CacheStatus s);

inline constexpr uint32_t kDefaultTopK = 5;
inline constexpr uint32_t kMaxTopK = 100;
inline constexpr uint32_t kMaxCandidates = 1000;
inline constexpr size_t kMaxQuestionBytes = 16 << 10;

struct AskRequest {
  std::string collection;
  std::string ns;
  std::string question;
  uint32_t top_k = 0;        // Sources packed at most; 0: kDefaultTopK.
  uint32_t candidate_k = 0;  // Retrieved; 0: max(4 * top_k, 20).
  std::optional<Json> filter;
  bool rerank = false;
  RetrievalMode mode = RetrievalMode::kAuto;
  // Model and sampling; prompt and messages are the pipeline's to fill.
  llm::GenerationRequest generation;
  std::string system_prompt;    // Chat models; empty: kDefaultSystemPrompt.
  std::string prompt_template;  // Empty: kDefaultTemplate. Needs {context} and {question}.
  std::vector<llm::ChatMessage> history;
  uint32_t context_tokens = 0;  // Source budget; 0: what the context leaves.
  bool no_cache = false;
  bool cache_nondeterministic = false;
};

struct Source {
  uint32_t number = 0;
  std::string document_id;
  uint32_t chunk = 0;
  std::string record_id;
  std::string text;
  std::string heading;
  float score = 0, dense_score = 0, text_score = 0, rerank_score = 0;
  uint64_t start_byte = 0, end_byte = 0;
  storage::Metadata metadata;  // The chunk's, the document path's keys included.
};

struct Timings {
  double embed_ms = 0, retrieve_ms = 0, rerank_ms = 0, pack_ms = 0, prefill_ms = 0, decode_ms = 0,
         total_ms = 0;
};

struct AskSummary {
  uint32_t prompt_tokens = 0, completion_tokens = 0;
  uint32_t cached_prompt_tokens = 0;  // Supplied by the prefix KV cache.
  llm::FinishReason finish = llm::FinishReason::kNone;
  Timings timings;
  CacheStatus cache = CacheStatus::kBypass;
  std::vector<uint32_t> cited;              // In order of first use.
  std::vector<uint32_t> unknown_citations;  // Cited numbers no source has.
  std::string model;
};

struct Retrieval {
  std::vector<Source> candidates;             // Best first (reranked when asked); not numbered.
  Timings timings;                            // embed, retrieve and rerank.
  RetrievalMode mode = RetrievalMode::kAuto;  // The mode used.
};

// Where Ask's events go, in order: Sources once, Token any number of times,
// Done once. Each returns false when the client is gone (Ask then stops).
class AskSink {
 public:
  virtual ~AskSink() = default;
  virtual bool Sources(const std::vector<Source>& sources) = 0;
  virtual bool Token(std::string_view text, int token_id) = 0;
  virtual bool Done(const AskSummary& summary) = 0;
};

}  // namespace quiver::rag

#endif  // QUIVER_RAG_TYPES_H_
