#include "rag/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "common/coding.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "rag/chunker.h"

namespace quiver::rag {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

absl::Status Cancelled() { return absl::CancelledError("the client went away"); }

bool IsReservedKey(std::string_view key) {
  return key == kDocumentIdKey || key == kChunkKey || key == kStartByteKey || key == kEndByteKey ||
         key == kHeadingKey;
}

std::string ReplaceAll(std::string s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

const storage::MetadataValue* FindKey(const storage::Metadata& md, std::string_view key) {
  auto it = md.find(key);
  return it == md.end() ? nullptr : &it->second;
}
std::string StringKey(const storage::Metadata& md, std::string_view key) {
  const auto* v = FindKey(md, key);
  return v != nullptr && std::holds_alternative<std::string>(*v) ? std::get<std::string>(*v) : "";
}
uint64_t NumberKey(const storage::Metadata& md, std::string_view key) {
  const auto* v = FindKey(md, key);
  return v != nullptr && std::holds_alternative<double>(*v)
             ? static_cast<uint64_t>(std::get<double>(*v))
             : 0;
}

std::vector<float> Normalized(std::vector<float> v) {
  double norm = 0;
  for (float f : v) norm += static_cast<double>(f) * f;
  if (norm > 0) {
    const float inv = static_cast<float>(1 / std::sqrt(norm));
    for (float& f : v) f *= inv;
  }
  return v;
}

// Everything besides the question and the sources that shapes an answer.
std::string SettingsKey(const AskRequest& r, std::string_view model, RetrievalMode mode,
                        uint32_t top_k, uint32_t candidate_k) {
  const llm::GenerationRequest& g = r.generation;
  std::string k =
      StrCat(model, "\x1f", static_cast<int>(mode), "\x1f", top_k, "\x1f", candidate_k, "\x1f",
             r.rerank, "\x1f", r.context_tokens, "\x1f", r.filter ? r.filter->Dump() : "", "\x1f",
             r.prompt_template, "\x1f", r.system_prompt, "\x1f", g.temperature, "\x1f", g.top_k,
             "\x1f", g.top_p, "\x1f", g.repetition_penalty, "\x1f", g.seed, "\x1f", g.max_tokens);
  for (const std::string& s : g.stop) k += StrCat("\x1e", s);
  for (const llm::ChatMessage& m : r.history) k += StrCat("\x1d", m.role, "\x1e", m.content);
  return k;
}

}  // namespace

std::string_view CacheStatusName(CacheStatus s) {
  switch (s) {
    case CacheStatus::kMiss:
      return "miss";
    case CacheStatus::kExactHit:
      return "exact";
    case CacheStatus::kSemanticHit:
      return "semantic";
    case CacheStatus::kBypass:
      return "bypass";
  }
  return "unknown";
}

void FindCitations(std::string_view answer, uint32_t source_count, std::vector<uint32_t>* cited,
                   std::vector<uint32_t>* unknown) {
  absl::flat_hash_set<uint32_t> seen;
  for (size_t open = answer.find('['); open != std::string_view::npos;
       open = answer.find('[', open + 1)) {
    const size_t close = answer.find(']', open);
    if (close == std::string_view::npos) break;
    const std::string_view inside = answer.substr(open + 1, close - open - 1);
    // Only digits, commas and spaces: "[1]", "[1, 3]".
    if (inside.empty() || inside.size() > 32 ||
        inside.find_first_not_of("0123456789, ") != std::string_view::npos ||
        inside.find_first_of("0123456789") == std::string_view::npos) {
      continue;
    }
    std::vector<uint32_t> numbers;
    uint64_t n = 0;
    bool in_number = false, ok = true;
    for (char c : inside) {
      if (c >= '0' && c <= '9') {
        n = n * 10 + static_cast<uint64_t>(c - '0');
        in_number = true;
        if (n > 1000000) ok = false;
      } else if (in_number) {
        numbers.push_back(static_cast<uint32_t>(n));
        n = 0;
        in_number = false;
      }
    }
    if (in_number) numbers.push_back(static_cast<uint32_t>(n));
    if (!ok) continue;
    for (uint32_t x : numbers) {
      if (!seen.insert(x).second) continue;
      (x >= 1 && x <= source_count ? cited : unknown)->push_back(x);
    }
  }
}

Pipeline::Pipeline(db::Engine* engine, embed::EmbeddingService* embeddings,
                   llm::Generator* generator, AnswerCache* cache, PipelineOptions options)
    : engine_(engine),
      embeddings_(embeddings),
      generator_(generator),
      cache_(cache),
      options_(options) {}

absl::StatusOr<embed::EmbeddingService*> Pipeline::EmbedderFor(
    const storage::CollectionConfig& config) {
  if (config.embedding_model.empty()) {
    return absl::FailedPreconditionError(
        StrCat("collection ", Quoted(config.name),
               " is bound to no embedding model; documents and questions need one (create it "
               "with embedding.model)"));
  }
  if (embeddings_ == nullptr || !embeddings_->has_embedder() ||
      embeddings_->embed_name() != config.embedding_model) {
    return absl::FailedPreconditionError(
        StrCat("collection ", Quoted(config.name), " is bound to embedding model ",
               Quoted(config.embedding_model),
               ", which this server has not loaded (quiverd --embed_model)"));
  }
  return embeddings_;
}

absl::StatusOr<UpsertDocumentResult> Pipeline::UpsertDocument(std::string_view collection,
                                                              std::string_view ns,
                                                              DocumentInput doc) {
  ASSIGN_OR_RETURN(db::CollectionInfo info, engine_->GetCollection(collection));
  const storage::CollectionConfig& config = info.meta.config;
  ASSIGN_OR_RETURN(embed::EmbeddingService * emb, EmbedderFor(config));
  const embed::EmbeddingModel& model = emb->embedder();
  if (config.chunking.chunk_tokens > model.max_content_tokens()) {
    return absl::FailedPreconditionError(
        StrCat("collection ", Quoted(config.name), " cuts chunks of ", config.chunking.chunk_tokens,
               " tokens, but model ", Quoted(config.embedding_model), " embeds at most ",
               model.max_content_tokens(), "; recreate it with a smaller chunk_tokens"));
  }
  for (const auto& [key, value] : doc.metadata) {
    if (IsReservedKey(key)) {
      return absl::InvalidArgumentError(
          StrCat("document metadata key ", Quoted(key),
                 " is reserved: the document path sets it on every chunk"));
    }
  }
  const db::Limits& lim = engine_->options().limits;
  if (doc.id.empty()) return absl::InvalidArgumentError("document id must not be empty");
  if (doc.text.size() > lim.max_document_bytes) {
    return absl::InvalidArgumentError(StrCat("document ", Quoted(doc.id), " is ", doc.text.size(),
                                             " bytes; the limit is ", lim.max_document_bytes,
                                             " (quiverd --max_document_bytes)"));
  }
  if (!IsValidUtf8(doc.text)) {
    return absl::InvalidArgumentError(
        StrCat("text of document ", Quoted(doc.id), " is not valid UTF-8"));
  }
  ChunkOptions copt;
  copt.chunk_tokens = config.chunking.chunk_tokens;
  copt.overlap_tokens = config.chunking.overlap_tokens;
  ASSIGN_OR_RETURN(std::vector<Chunk> chunks, ChunkText(doc.text, copt, [&](std::string_view s) {
                     return model.CountTokens(s);
                   }));
  if (chunks.empty()) {
    return absl::InvalidArgumentError(StrCat("document ", Quoted(doc.id), " has no text"));
  }
  if (chunks.size() > lim.max_document_chunks) {
    return absl::InvalidArgumentError(StrCat(
        "document ", Quoted(doc.id), " makes ", chunks.size(), " chunks; the limit is ",
        lim.max_document_chunks, " (quiverd --max_document_chunks, or larger chunk_tokens)"));
  }
  db::DocumentWrite write;
  write.id = doc.id;
  UpsertDocumentResult result;
  write.chunks.resize(chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Chunk& c = chunks[i];
    storage::Record& r = write.chunks[i];
    r.id = storage::ChunkId(doc.id, static_cast<uint32_t>(i));
    r.text = doc.text.substr(c.begin, c.end - c.begin);
    r.metadata = doc.metadata;
    r.metadata[kDocumentIdKey] = doc.id;
    r.metadata[kChunkKey] = static_cast<double>(i);
    r.metadata[kStartByteKey] = static_cast<double>(c.begin);
    r.metadata[kEndByteKey] = static_cast<double>(c.end);
    if (!c.heading.empty()) r.metadata[kHeadingKey] = c.heading;
    result.tokens += c.tokens;
  }
  // Embedded in batches: the service's worker batches them with other
  // requests' texts.
  const size_t batch =
      std::max<size_t>(1, std::min(options_.embed_batch, emb->options().max_inputs));
  for (size_t from = 0; from < write.chunks.size(); from += batch) {
    const size_t to = std::min(write.chunks.size(), from + batch);
    std::vector<std::string> texts;
    for (size_t i = from; i < to; ++i) texts.push_back(write.chunks[i].text);
    ASSIGN_OR_RETURN(embed::EmbedResult embedded, emb->Embed(texts));
    for (size_t i = from; i < to; ++i)
      write.chunks[i].values = std::move(embedded.vectors[i - from]);
  }
  write.text = std::move(doc.text);
  write.metadata = std::move(doc.metadata);
  ASSIGN_OR_RETURN(db::PutDocumentResult put,
                   engine_->PutDocument(collection, ns, std::move(write)));
  result.chunk_count = put.chunk_count;
  result.replaced_chunk_count = put.replaced_chunk_count;
  return result;
}

absl::StatusOr<storage::StoredDocument> Pipeline::GetDocument(std::string_view collection,
                                                              std::string_view ns,
                                                              std::string_view id) {
  return engine_->GetDocument(collection, ns, id);
}

absl::StatusOr<db::ListDocumentsResult> Pipeline::ListDocuments(std::string_view collection,
                                                                std::string_view ns,
                                                                std::string_view prefix,
                                                                uint32_t limit,
                                                                std::string_view pagination_token) {
  return engine_->ListDocuments(collection, ns, prefix, limit, pagination_token);
}

absl::StatusOr<uint32_t> Pipeline::DeleteDocument(std::string_view collection, std::string_view ns,
                                                  std::string_view id) {
  return engine_->DeleteDocument(collection, ns, id);
}

// ---- Generate ----------------------------------------------------------------

absl::Status Pipeline::Generate(
    const llm::GenerationRequest& req, bool use_cache,
    const std::function<bool(const llm::TokenEvent& event, bool cached)>& on_event,
    std::function<bool()> gone) {
  if (generator_ == nullptr) {
    return absl::FailedPreconditionError(
        "no generative model is loaded (quiverd --llm-model=PATH)");
  }
  const bool cacheable = use_cache && cache_ != nullptr && cache_->options().max_entries > 0 &&
                         (req.temperature == 0 || req.seed != 0);
  uint64_t key = 0;
  if (cacheable) {
    ASSIGN_OR_RETURN(llm::GenerateParams params, generator_->Prepare(req));
    std::string k =
        StrCat("generate\x1f", generator_->name(), "\x1f", params.prompt, "\x1f",
               params.add_bos.value_or(true), "\x1f", params.temperature, "\x1f", params.top_k,
               "\x1f", params.top_p, "\x1f", params.repetition_penalty, "\x1f",
               params.temperature == 0 ? 0 : req.seed, "\x1f", params.max_tokens);
    for (const std::string& stop : params.stop) k += StrCat("\x1e", stop);
    key = Fingerprint64(k);
    if (auto hit = cache_->GetExact(key)) {
      llm::TokenEvent e;
      e.text = hit->answer;
      e.done = true;
      e.reason = hit->finish;
      e.prompt_tokens = static_cast<int>(hit->prompt_tokens);
      e.completion_tokens = static_cast<int>(hit->completion_tokens);
      if (!on_event(e, true)) return Cancelled();
      return absl::OkStatus();
    }
  }
  auto is_gone = [&] { return gone != nullptr && gone(); };
  ASSIGN_OR_RETURN(std::unique_ptr<llm::TokenStream> stream, generator_->Start(req, gone));
  std::string text;
  while (true) {
    const llm::TokenEvent e = stream->Next();
    if (e.done && e.reason == llm::FinishReason::kCancelled) {
      if (is_gone()) return Cancelled();
      return absl::UnavailableError("generation was stopped (server shutting down)");
    }
    text += e.text;
    if (!on_event(e, false)) {
      // The client went away: stop the work and read to the final event.
      stream->Cancel();
      while (!e.done && !stream->Next().done) {
      }
      return Cancelled();
    }
    if (!e.done) continue;
    if (cacheable) {
      CachedAnswer a;
      a.question = req.prompt;
      a.answer = std::move(text);
      a.prompt_tokens = static_cast<uint32_t>(e.prompt_tokens);
      a.completion_tokens = static_cast<uint32_t>(e.completion_tokens);
      a.finish = e.reason;
      a.model = generator_->name();
      cache_->Put(key, "generate", 0, {}, std::move(a));
    }
    return absl::OkStatus();
  }
}

// ---- Ask ---------------------------------------------------------------------

absl::StatusOr<Pipeline::Plan> Pipeline::MakePlan(const AskRequest& req) {
  Plan plan;
  if (req.question.empty()) return absl::InvalidArgumentError("question must not be empty");
  if (req.question.size() > kMaxQuestionBytes) {
    return absl::InvalidArgumentError(
        StrCat("question is ", req.question.size(), " bytes; the limit is ", kMaxQuestionBytes));
  }
  if (!IsValidUtf8(req.question)) return absl::InvalidArgumentError("question is not valid UTF-8");
  const uint32_t top_k = req.top_k == 0 ? kDefaultTopK : req.top_k;
  if (top_k > kMaxTopK) {
    return absl::InvalidArgumentError(StrCat("top_k is ", top_k, "; it must be in 1..", kMaxTopK));
  }
  const uint32_t candidate_k = req.candidate_k == 0 ? std::max(4 * top_k, 20u) : req.candidate_k;
  if (candidate_k < top_k || candidate_k > kMaxCandidates) {
    return absl::InvalidArgumentError(StrCat("candidate_k is ", candidate_k, "; it must be in ",
                                             top_k, "..", kMaxCandidates, " (at least top_k)"));
  }
  const std::string tmpl = req.prompt_template.empty() ? kDefaultTemplate : req.prompt_template;
  if (tmpl.find("{context}") == std::string::npos || tmpl.find("{question}") == std::string::npos) {
    return absl::InvalidArgumentError("prompt_template must contain {context} and {question}");
  }
  if (!IsValidUtf8(tmpl) || !IsValidUtf8(req.system_prompt)) {
    return absl::InvalidArgumentError("prompt_template and system_prompt must be valid UTF-8");
  }
  for (size_t i = 0; i < req.history.size(); ++i) {
    const llm::ChatMessage& m = req.history[i];
    if (m.role != "user" && m.role != "assistant") {
      return absl::InvalidArgumentError(
          StrCat("history message ", i, " has role ", Quoted(m.role), "; use user or assistant"));
    }
    if (!IsValidUtf8(m.content)) {
      return absl::InvalidArgumentError(StrCat("history message ", i, " is not valid UTF-8"));
    }
  }
  if (!req.generation.model.empty() &&
      (generator_ == nullptr || generator_->name() != req.generation.model)) {
    return absl::NotFoundError(
        StrCat("no generative model ", Quoted(req.generation.model),
               generator_ == nullptr ? " (this server has none loaded)"
                                     : StrCat("; this server has ", Quoted(generator_->name()))));
  }
  ASSIGN_OR_RETURN(db::CollectionInfo info, engine_->GetCollection(req.collection));
  const storage::CollectionConfig& config = info.meta.config;
  RetrievalMode mode = req.mode;
  if (mode == RetrievalMode::kAuto) {
    mode = config.text.enabled ? RetrievalMode::kHybrid : RetrievalMode::kDense;
  }
  if ((mode == RetrievalMode::kText || mode == RetrievalMode::kHybrid) && !config.text.enabled) {
    return absl::FailedPreconditionError(
        StrCat("collection ", Quoted(config.name),
               " has no text index; ask in dense mode or create it with text.enabled"));
  }
  const bool dense = mode != RetrievalMode::kText;
  embed::EmbeddingService* emb = nullptr;
  if (dense) {
    ASSIGN_OR_RETURN(emb, EmbedderFor(config));
  }
  if (req.rerank && (embeddings_ == nullptr || !embeddings_->has_reranker())) {
    return absl::FailedPreconditionError(
        "rerank was asked for, but no reranker is loaded (quiverd --rerank_model)");
  }

  plan.top_k = top_k;
  plan.candidate_k = candidate_k;
  plan.tmpl = tmpl;
  plan.mode = mode;
  plan.emb = emb;
  return plan;
}

absl::StatusOr<std::vector<float>> Pipeline::EmbedQuestion(const AskRequest& req, const Plan& plan,
                                                           Timings* timings) {
  if (plan.emb == nullptr) return std::vector<float>();
  const Clock::time_point t = Clock::now();
  ASSIGN_OR_RETURN(embed::EmbedResult e, plan.emb->Embed({req.question}));
  timings->embed_ms = MsSince(t);
  return std::move(e.vectors[0]);
}

absl::StatusOr<std::vector<Source>> Pipeline::Search(const AskRequest& req, const Plan& plan,
                                                     const std::vector<float>& question_vector,
                                                     Timings* timings,
                                                     const std::function<bool()>& is_gone) {
  const bool dense = plan.mode != RetrievalMode::kText;
  const RetrievalMode mode = plan.mode;
  const uint32_t candidate_k = plan.candidate_k;
  // Retrieve.
  std::vector<Source> candidates;
  {
    const Clock::time_point t = Clock::now();
    db::QueryRequest q;
    q.ns = req.ns;
    q.top_k = candidate_k;
    q.filter = req.filter;
    q.include_metadata = true;
    q.vector = question_vector;
    if (!dense || mode == RetrievalMode::kHybrid) q.text = req.question;
    q.embed_text = false;
    ASSIGN_OR_RETURN(db::QueryResult found, engine_->Query(req.collection, q));
    for (db::Match& m : found.matches) {
      Source s;
      s.record_id = m.id;
      s.score = m.score;
      s.text = std::move(m.text);
      if (m.metadata) s.metadata = std::move(*m.metadata);
      s.document_id = StringKey(s.metadata, kDocumentIdKey);
      s.chunk = static_cast<uint32_t>(NumberKey(s.metadata, kChunkKey));
      s.start_byte = NumberKey(s.metadata, kStartByteKey);
      s.end_byte = NumberKey(s.metadata, kEndByteKey);
      s.heading = StringKey(s.metadata, kHeadingKey);
      if (m.explanation.empty()) {
        (dense ? s.dense_score : s.text_score) = m.score;
      }
      for (const db::ScoreComponent& part : m.explanation) {
        if (part.source == "dense") s.dense_score = part.score;
        if (part.source == "text") s.text_score = part.score;
      }
      candidates.push_back(std::move(s));
    }
    timings->retrieve_ms = MsSince(t);
  }
  if (is_gone()) return Cancelled();

  // Rerank.
  if (req.rerank && !candidates.empty()) {
    const Clock::time_point t = Clock::now();
    std::vector<std::string> texts;
    for (const Source& s : candidates) texts.push_back(s.text);
    ASSIGN_OR_RETURN(std::vector<embed::RankedDocument> ranked,
                     embeddings_->Rerank(req.question, texts));
    std::vector<Source> reordered;
    for (const embed::RankedDocument& r : ranked) {
      reordered.push_back(std::move(candidates[r.index]));
      reordered.back().rerank_score = r.score;
    }
    candidates = std::move(reordered);
    timings->rerank_ms = MsSince(t);
  }
  if (is_gone()) return Cancelled();

  return candidates;
}

absl::StatusOr<Retrieval> Pipeline::Retrieve(const AskRequest& req) {
  ASSIGN_OR_RETURN(Plan plan, MakePlan(req));
  Retrieval out;
  ASSIGN_OR_RETURN(std::vector<float> v, EmbedQuestion(req, plan, &out.timings));
  ASSIGN_OR_RETURN(out.candidates, Search(req, plan, v, &out.timings, [] { return false; }));
  out.mode = plan.mode;
  return out;
}

absl::Status Pipeline::Ask(const AskRequest& req, AskSink* sink, std::function<bool()> gone) {
  const Clock::time_point start = Clock::now();
  auto is_gone = [&] { return gone != nullptr && gone(); };
  AskSummary summary;

  ASSIGN_OR_RETURN(Plan plan, MakePlan(req));
  const uint32_t top_k = plan.top_k, candidate_k = plan.candidate_k;
  const std::string& tmpl = plan.tmpl;
  const RetrievalMode mode = plan.mode;
  const bool dense = mode != RetrievalMode::kText;

  const llm::GenerationRequest& g = req.generation;
  const bool deterministic = g.temperature == 0 || g.seed != 0;
  const bool cacheable = cache_ != nullptr && cache_->options().max_entries > 0 && !req.no_cache &&
                         generator_ != nullptr && (deterministic || req.cache_nondeterministic);
  summary.cache = cacheable ? CacheStatus::kMiss : CacheStatus::kBypass;
  summary.model = generator_ != nullptr ? generator_->name() : "";
  uint64_t epoch = 0;
  std::string scope;
  if (cacheable) {
    ASSIGN_OR_RETURN(epoch, engine_->CollectionEpoch(req.collection));
    scope = StrCat(req.collection, "\x1f", req.ns, "\x1f",
                   SettingsKey(req, summary.model, mode, top_k, candidate_k));
  }
  auto replay = [&](const CachedAnswer& a, CacheStatus status) -> absl::Status {
    if (!sink->Sources(a.sources)) return Cancelled();
    if (!a.answer.empty() && !sink->Token(a.answer, -1)) return Cancelled();
    summary.cache = status;
    summary.prompt_tokens = a.prompt_tokens;
    summary.completion_tokens = a.completion_tokens;
    summary.finish = a.finish;
    summary.model = a.model;
    FindCitations(a.answer, static_cast<uint32_t>(a.sources.size()), &summary.cited,
                  &summary.unknown_citations);
    summary.timings.total_ms = MsSince(start);
    if (!sink->Done(summary)) return Cancelled();
    return absl::OkStatus();
  };

  ASSIGN_OR_RETURN(std::vector<float> question_vector, EmbedQuestion(req, plan, &summary.timings));
  std::vector<float> unit_question;
  if (cacheable && dense) {
    unit_question = Normalized(question_vector);
    if (auto hit = cache_->GetSemantic(scope, epoch, unit_question)) {
      // The same question in the same epoch retrieves the same sources: an
      // exact hit found early.
      return replay(
          *hit, hit->question == req.question ? CacheStatus::kExactHit : CacheStatus::kSemanticHit);
    }
  }
  if (is_gone()) return Cancelled();

  ASSIGN_OR_RETURN(std::vector<Source> candidates,
                   Search(req, plan, question_vector, &summary.timings, is_gone));

  // Pack the best sources into the model's context.
  const Clock::time_point pack_start = Clock::now();
  const bool chat = generator_ != nullptr && generator_->has_chat_template();
  auto build = [&](const std::string& context) {
    llm::GenerationRequest out = g;
    const std::string user =
        ReplaceAll(ReplaceAll(tmpl, "{question}", req.question), "{context}", context);
    if (chat) {
      out.messages.push_back(
          {"system", req.system_prompt.empty() ? kDefaultSystemPrompt : req.system_prompt});
      for (const llm::ChatMessage& m : req.history) out.messages.push_back(m);
      out.messages.push_back({"user", user});
    } else {
      std::string prompt;
      if (!req.system_prompt.empty()) prompt = req.system_prompt + "\n\n";
      for (const llm::ChatMessage& m : req.history) {
        prompt += StrCat(m.role == "user" ? "User: " : "Assistant: ", m.content, "\n");
      }
      if (!req.history.empty()) prompt += "\n";
      out.prompt = prompt + user;
    }
    return out;
  };
  auto block = [](uint32_t number, const Source& s) {
    return StrCat("[", number, "] ", s.heading.empty() ? "" : StrCat("(", s.heading, ") "), s.text,
                  "\n");
  };
  std::vector<Source> sources;
  if (generator_ == nullptr) {
    for (size_t i = 0; i < candidates.size() && sources.size() < top_k; ++i) {
      sources.push_back(std::move(candidates[i]));
      sources.back().number = static_cast<uint32_t>(sources.size());
    }
  } else {
    const llm::Tokenizer& tok = generator_->tokenizer();
    auto count = [&](const std::string& text) -> absl::StatusOr<size_t> {
      ASSIGN_OR_RETURN(std::vector<int> ids, tok.Tokenize(text, false));
      return ids.size();
    };
    ASSIGN_OR_RETURN(llm::GenerateParams empty, generator_->Prepare(build("")));
    ASSIGN_OR_RETURN(size_t overhead, count(empty.prompt));
    const int64_t context = generator_->context_length();
    const int64_t max_new = g.max_tokens == 0 ? llm::kDefaultMaxTokens : g.max_tokens;
    int64_t budget = context - max_new - static_cast<int64_t>(overhead) - 1;
    if (req.context_tokens != 0) budget = std::min<int64_t>(budget, req.context_tokens);
    if (budget <= 0) {
      return absl::InvalidArgumentError(
          StrCat("no room for sources: the prompt takes ", overhead, " tokens and max_tokens is ",
                 max_new, " of the model's context of ", context, "; lower max_tokens"));
    }
    int64_t used = 0;
    for (size_t i = 0; i < candidates.size() && sources.size() < top_k; ++i) {
      const uint32_t number = static_cast<uint32_t>(sources.size() + 1);
      ASSIGN_OR_RETURN(size_t t, count(block(number, candidates[i])));
      if (used + static_cast<int64_t>(t) > budget) continue;  // A shorter one may fit.
      used += static_cast<int64_t>(t);
      sources.push_back(std::move(candidates[i]));
      sources.back().number = number;
    }
  }
  summary.timings.pack_ms = MsSince(pack_start);

  if (!sink->Sources(sources)) return Cancelled();
  if (generator_ == nullptr) {
    return absl::FailedPreconditionError(
        "generation is unavailable: no generative model is loaded (quiverd --llm_model); the "
        "sources were sent");
  }

  uint64_t exact_key = 0;
  if (cacheable) {
    std::string key = StrCat(scope, "\x1f", epoch, "\x1f", req.question);
    for (const Source& s : sources) {
      key += StrCat("\x1e", s.record_id, "\x1f", Fingerprint64(s.text));
    }
    exact_key = Fingerprint64(key);
    if (auto hit = cache_->GetExact(exact_key)) {
      // The sources were just sent; the stored answer was made from the same.
      summary.cache = CacheStatus::kExactHit;
      summary.prompt_tokens = hit->prompt_tokens;
      summary.completion_tokens = hit->completion_tokens;
      summary.finish = hit->finish;
      if (!hit->answer.empty() && !sink->Token(hit->answer, -1)) return Cancelled();
      FindCitations(hit->answer, static_cast<uint32_t>(sources.size()), &summary.cited,
                    &summary.unknown_citations);
      summary.timings.total_ms = MsSince(start);
      if (!sink->Done(summary)) return Cancelled();
      return absl::OkStatus();
    }
  }

  // Generate.
  std::string context;
  for (const Source& s : sources) context += block(s.number, s);
  const Clock::time_point gen_start = Clock::now();
  ASSIGN_OR_RETURN(std::unique_ptr<llm::TokenStream> stream,
                   generator_->Start(build(context), gone));
  std::string answer;
  bool first = true;
  Clock::time_point first_at = gen_start;
  while (true) {
    llm::TokenEvent e = stream->Next();
    if (first) {
      first_at = Clock::now();
      summary.timings.prefill_ms = MsSince(gen_start);
      first = false;
    }
    if (e.done && e.reason == llm::FinishReason::kCancelled) {
      if (is_gone()) return Cancelled();
      return absl::UnavailableError("generation was stopped (server shutting down)");
    }
    if (!e.text.empty() || e.token >= 0) {
      answer += e.text;
      if (!sink->Token(e.text, e.token)) {
        stream->Cancel();
        while (!e.done && !stream->Next().done) {
        }
        return Cancelled();
      }
    }
    if (e.done) {
      summary.prompt_tokens = static_cast<uint32_t>(e.prompt_tokens);
      summary.completion_tokens = static_cast<uint32_t>(e.completion_tokens);
      summary.cached_prompt_tokens = static_cast<uint32_t>(e.cached_prompt_tokens);
      summary.finish = e.reason;
      break;
    }
  }
  summary.timings.decode_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - first_at).count();
  FindCitations(answer, static_cast<uint32_t>(sources.size()), &summary.cited,
                &summary.unknown_citations);
  if (cacheable) {
    CachedAnswer a;
    a.question = req.question;
    a.answer = answer;
    a.prompt_tokens = summary.prompt_tokens;
    a.completion_tokens = summary.completion_tokens;
    a.finish = summary.finish;
    a.model = summary.model;
    a.sources = sources;
    cache_->Put(exact_key, scope, epoch, std::move(unit_question), std::move(a));
  }
  summary.timings.total_ms = MsSince(start);
  if (!sink->Done(summary)) return Cancelled();
  return absl::OkStatus();
}

}  // namespace quiver::rag
