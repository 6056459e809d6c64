#include "server/pinecone.h"

#include <cmath>

#include "absl/status/statusor.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "httplib.h"
#include "server/http_internal.h"
#include "storage/metadata.h"

namespace quiver::server {
namespace {

using http_internal::Body;
using http_internal::HttpStatus;
using http_internal::OptBool;
using http_internal::OptCount;
using http_internal::OptString;
using http_internal::SendJson;

constexpr char kDefaultNamespace[] = "__default__";
constexpr char kSideKeyPrefix[] = "pinecone/index/";

// The control plane's error body: {"error": {"code", "message"}, "status"}.
void ControlError(httplib::Response& res, const absl::Status& s) {
  const int status = HttpStatus(s.code());
  std::string code = std::string(absl::StatusCodeToString(s.code()));
  for (char& c : code) c = c == ' ' ? '_' : static_cast<char>(std::toupper(c));
  if (status == 403) code = "FORBIDDEN";
  Json::Object e;
  e["code"] = code;
  e["message"] = std::string(s.message());
  Json::Object body;
  body["error"] = Json(std::move(e));
  body["status"] = Json(static_cast<int64_t>(status));
  SendJson(res, status, Json(std::move(body)));
}

// The data plane's: {"code": <gRPC code>, "message", "details": []}.
void DataError(httplib::Response& res, const absl::Status& s) {
  Json::Object body;
  body["code"] = Json(static_cast<int64_t>(s.code()));
  body["message"] = std::string(s.message());
  body["details"] = Json(Json::Array{});
  SendJson(res, HttpStatus(s.code()), Json(std::move(body)));
}

std::string Namespace(std::string ns) { return ns == kDefaultNamespace ? std::string() : ns; }
std::string NamespaceName(const std::string& ns) { return ns.empty() ? kDefaultNamespace : ns; }

absl::StatusOr<ann::Metric> PineconeMetricFromName(const std::string& name) {
  if (name.empty() || name == "cosine") return ann::Metric::kCosine;
  if (name == "euclidean") return ann::Metric::kL2;
  if (name == "dotproduct") return ann::Metric::kDot;
  return absl::InvalidArgumentError(
      StrCat("metric ", Quoted(name), " is not one of cosine, euclidean, dotproduct"));
}
const char* PineconeMetric(ann::Metric m) {
  switch (m) {
    case ann::Metric::kL2:
      return "euclidean";
    case ann::Metric::kDot:
      return "dotproduct";
    default:
      return "cosine";
  }
}

// Pinecone's settings Quiver's catalog does not hold (deletion protection,
// tags, spec), kept in the store's side table under the collection's id.
std::string SideKey(uint32_t collection_id) { return StrCat(kSideKeyPrefix, collection_id); }

Json LoadExtras(const HttpBackends& b, uint32_t id) {
  auto v = b.engine->side_store().GetSide(SideKey(id));
  if (v.ok() && v->has_value()) {
    auto j = ParseJson(**v);
    if (j.ok() && j->is_object()) return *j;
  }
  return Json(Json::Object{});
}

Json IndexModel(const HttpBackends& b, const db::CollectionInfo& info, const std::string& host) {
  const storage::CollectionConfig& c = info.meta.config;
  const Json extras = LoadExtras(b, info.meta.id);
  Json::Object o;
  o["name"] = c.name;
  o["dimension"] = Json(static_cast<int64_t>(c.dimension));
  o["metric"] = PineconeMetric(c.metric);
  o["host"] = StrCat(b.tls ? "https://" : "http://", host, "/indexes/", c.name);
  o["vector_type"] = "dense";
  const Json* dp = extras.Find("deletion_protection");
  o["deletion_protection"] = dp != nullptr ? *dp : Json("disabled");
  const Json* tags = extras.Find("tags");
  o["tags"] = tags != nullptr ? *tags : Json(Json::Object{});
  const Json* spec = extras.Find("spec");
  o["spec"] =
      spec != nullptr
          ? *spec
          : Json(Json::Object{{"serverless", Json(Json::Object{{"cloud", Json("aws")},
                                                               {"region", Json("local")}})}});
  o["status"] = Json(Json::Object{{"ready", Json(true)}, {"state", Json("Ready")}});
  return Json(std::move(o));
}

absl::StatusOr<std::vector<float>> Floats(const Json* j, std::string_view what) {
  std::vector<float> out;
  if (j == nullptr || j->is_null()) return out;
  if (!j->is_array()) return absl::InvalidArgumentError(StrCat(what, " must be a list of numbers"));
  for (const Json& x : j->as_array()) {
    if (!x.is_number()) return absl::InvalidArgumentError(StrCat(what, " must hold numbers"));
    out.push_back(static_cast<float>(x.as_number()));
  }
  return out;
}

absl::StatusOr<storage::SparseVector> Sparse(const Json* j) {
  storage::SparseVector out;
  if (j == nullptr || j->is_null()) return out;
  const Json* idx = j->Find("indices");
  const Json* val = j->Find("values");
  if (idx == nullptr || val == nullptr || !idx->is_array() || !val->is_array()) {
    return absl::InvalidArgumentError("sparseValues needs indices and values lists");
  }
  for (const Json& i : idx->as_array()) {
    if (!i.is_number() || i.as_number() < 0 || i.as_number() > 4294967295.0) {
      return absl::InvalidArgumentError("sparseValues.indices must be non-negative integers");
    }
    out.indices.push_back(static_cast<uint32_t>(i.as_number()));
  }
  ASSIGN_OR_RETURN(out.values, Floats(val, "sparseValues.values"));
  return out;
}

Json FloatsJson(const std::vector<float>& v) {
  Json out{Json::Array{}};
  Json::Array& a = out.as_array();
  a.reserve(v.size());
  for (float f : v) a.emplace_back(static_cast<double>(f));
  return out;
}

Json SparseJson(const storage::SparseVector& s) {
  Json out{Json::Object{}};
  Json idx{Json::Array{}};
  for (uint32_t i : s.indices) idx.as_array().emplace_back(static_cast<int64_t>(i));
  out.as_object()["indices"] = std::move(idx);
  out.as_object()["values"] = FloatsJson(s.values);
  return out;
}

Json RecordJson(const storage::Record& r) {
  Json::Object o;
  o["id"] = r.id;
  o["values"] = FloatsJson(r.values);
  if (!r.sparse.empty()) o["sparseValues"] = SparseJson(r.sparse);
  if (!r.metadata.empty()) o["metadata"] = storage::MetadataToJson(r.metadata);
  return Json(std::move(o));
}

Json UsageJson() { return Json(Json::Object{{"readUnits", Json(static_cast<int64_t>(1))}}); }

}  // namespace

bool IsPineconeWrite(std::string_view method, std::string_view path) {
  if (!path.starts_with("/indexes")) return false;
  if (method == "DELETE" || method == "PATCH") return true;
  if (method != "POST") return false;
  return path == "/indexes" || path.ends_with("/vectors/upsert") ||
         path.ends_with("/vectors/update") || path.ends_with("/vectors/delete");
}

void PineconeRerank(const HttpBackends& b, const httplib::Request& req, httplib::Response& res) {
  auto body = Body(req);
  if (!body.ok()) return ControlError(res, body.status());
  std::string model, query;
  uint32_t top_n = 0;
  bool return_documents = true;
  absl::Status s = OptString(*body, "model", &model);
  if (s.ok()) s = OptString(*body, "query", &query);
  if (s.ok()) s = OptCount(*body, "top_n", &top_n);
  if (s.ok()) s = OptBool(*body, "return_documents", &return_documents);
  if (!s.ok()) return ControlError(res, s);
  std::string field = "text";
  if (const Json* rf = body->Find("rank_fields"); rf != nullptr && !rf->is_null()) {
    if (!rf->is_array() || rf->as_array().size() != 1 || !rf->as_array()[0].is_string()) {
      return ControlError(res, absl::InvalidArgumentError("rank_fields must name one field"));
    }
    field = rf->as_array()[0].as_string();
  }
  const Json* docs = body->Find("documents");
  if (docs == nullptr || !docs->is_array()) {
    return ControlError(res, absl::InvalidArgumentError("documents must be a list"));
  }
  std::vector<std::string> texts;
  for (size_t i = 0; i < docs->as_array().size(); ++i) {
    const Json& d = docs->as_array()[i];
    if (d.is_string()) {
      texts.push_back(d.as_string());
    } else if (const Json* t = d.Find(field); t != nullptr && t->is_string()) {
      texts.push_back(t->as_string());
    } else {
      return ControlError(res, absl::InvalidArgumentError(StrCat(
                                   "documents[", i, "] has no string field ", Quoted(field))));
    }
  }
  auto ranked = b.embedding->Rerank(query, texts, top_n, model);
  if (!ranked.ok()) return ControlError(res, ranked.status());
  Json::Array data;
  for (const embed::RankedDocument& r : *ranked) {
    Json::Object o;
    o["index"] = Json(static_cast<int64_t>(r.index));
    o["score"] = Json(static_cast<double>(r.score));
    if (return_documents) {
      const Json& d = docs->as_array()[r.index];
      o["document"] = d.is_string() ? Json(Json::Object{{"text", d}}) : d;
    }
    data.push_back(Json(std::move(o)));
  }
  Json::Object out;
  out["model"] = b.embedding->rerank_name();
  out["data"] = Json(std::move(data));
  out["usage"] = Json(Json::Object{{"rerank_units", Json(static_cast<int64_t>(1))}});
  SendJson(res, 200, Json(std::move(out)));
}

void RegisterPineconeRoutes(httplib::Server* svr, const HttpBackends& b) {
  // ---- Inference ---------------------------------------------------------------
  svr->Post("/embed", [b](const httplib::Request& req, httplib::Response& res) {
    auto body = Body(req);
    if (!body.ok()) return ControlError(res, body.status());
    std::string model;
    if (absl::Status s = OptString(*body, "model", &model); !s.ok()) return ControlError(res, s);
    const Json* inputs = body->Find("inputs");
    if (inputs == nullptr || !inputs->is_array()) {
      return ControlError(res, absl::InvalidArgumentError("inputs must be a list of {text}"));
    }
    std::vector<std::string> texts;
    for (const Json& in : inputs->as_array()) {
      const Json* t = in.is_string() ? &in : in.Find("text");
      if (t == nullptr || !t->is_string()) {
        return ControlError(res, absl::InvalidArgumentError("each input needs a string text"));
      }
      texts.push_back(t->as_string());
    }
    auto r = b.embedding->Embed(texts, /*normalize=*/true, model);
    if (!r.ok()) return ControlError(res, r.status());
    Json::Array data;
    int64_t tokens = 0;
    for (size_t i = 0; i < r->vectors.size(); ++i) {
      Json::Object e;
      e["values"] = FloatsJson(r->vectors[i]);
      e["vector_type"] = "dense";
      data.push_back(Json(std::move(e)));
      tokens += r->token_counts[i];
    }
    Json::Object out;
    out["model"] = b.embedding->embed_name();
    out["vector_type"] = "dense";
    out["data"] = Json(std::move(data));
    out["usage"] = Json(Json::Object{{"total_tokens", Json(tokens)}});
    SendJson(res, 200, Json(std::move(out)));
  });

  // ---- Control plane -------------------------------------------------------
  svr->Post("/indexes", [b](const httplib::Request& req, httplib::Response& res) {
    auto body = Body(req);
    if (!body.ok()) return ControlError(res, body.status());
    storage::CollectionConfig c;
    std::string metric, vector_type = "dense", protection = "disabled";
    uint32_t dimension = 0;
    absl::Status s = OptString(*body, "name", &c.name);
    if (s.ok()) s = OptCount(*body, "dimension", &dimension);
    if (s.ok()) s = OptString(*body, "metric", &metric);
    if (s.ok()) s = OptString(*body, "vector_type", &vector_type);
    if (s.ok()) s = OptString(*body, "deletion_protection", &protection);
    if (!s.ok()) return ControlError(res, s);
    if (vector_type != "dense") {
      return ControlError(
          res, absl::InvalidArgumentError("only dense indexes are supported; a dense index also "
                                          "stores sparse values and queries them hybrid"));
    }
    if (protection != "enabled" && protection != "disabled") {
      return ControlError(
          res, absl::InvalidArgumentError("deletion_protection must be enabled or disabled"));
    }
    auto m = PineconeMetricFromName(metric);
    if (!m.ok()) return ControlError(res, m.status());
    c.dimension = dimension;
    c.metric = *m;
    c.index = storage::IndexKind::kHnsw;
    auto created = b.engine->CreateCollection(c);
    if (!created.ok()) return ControlError(res, created.status());
    Json::Object extras;
    extras["deletion_protection"] = protection;
    const Json* tags = body->Find("tags");
    extras["tags"] = tags != nullptr && tags->is_object() ? *tags : Json(Json::Object{});
    if (const Json* spec = body->Find("spec"); spec != nullptr && spec->is_object()) {
      extras["spec"] = *spec;
    }
    (void)b.engine->side_store().PutSide(SideKey(created->meta.id), Json(std::move(extras)).Dump());
    SendJson(res, 201, IndexModel(b, *created, req.get_header_value("Host")));
  });
  svr->Get("/indexes", [b](const httplib::Request& req, httplib::Response& res) {
    Json::Array list;
    for (const db::CollectionInfo& info : b.engine->ListCollections()) {
      list.push_back(IndexModel(b, info, req.get_header_value("Host")));
    }
    SendJson(res, 200, Json(Json::Object{{"indexes", Json(std::move(list))}}));
  });
  svr->Get(R"(/indexes/([^/]+))", [b](const httplib::Request& req, httplib::Response& res) {
    auto info = b.engine->GetCollection(req.matches[1].str());
    if (!info.ok()) return ControlError(res, info.status());
    SendJson(res, 200, IndexModel(b, *info, req.get_header_value("Host")));
  });
  svr->Delete(R"(/indexes/([^/]+))", [b](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1].str();
    auto info = b.engine->GetCollection(name);
    if (!info.ok()) return ControlError(res, info.status());
    const Json extras = LoadExtras(b, info->meta.id);
    if (const Json* dp = extras.Find("deletion_protection");
        dp != nullptr && dp->is_string() && dp->as_string() == "enabled") {
      return ControlError(res, absl::PermissionDeniedError(
                                   StrCat("deletion protection is enabled for index ", Quoted(name),
                                          "; disable it (configure) before deleting")));
    }
    if (absl::Status s = b.engine->DropCollection(name); !s.ok()) return ControlError(res, s);
    (void)b.engine->side_store().DeleteSide(SideKey(info->meta.id));
    res.status = 202;
  });
  svr->Patch(R"(/indexes/([^/]+))", [b](const httplib::Request& req, httplib::Response& res) {
    auto info = b.engine->GetCollection(req.matches[1].str());
    if (!info.ok()) return ControlError(res, info.status());
    auto body = Body(req);
    if (!body.ok()) return ControlError(res, body.status());
    Json extras = LoadExtras(b, info->meta.id);
    std::string protection;
    if (absl::Status s = OptString(*body, "deletion_protection", &protection); !s.ok()) {
      return ControlError(res, s);
    }
    if (!protection.empty()) {
      if (protection != "enabled" && protection != "disabled") {
        return ControlError(
            res, absl::InvalidArgumentError("deletion_protection must be enabled or disabled"));
      }
      extras.as_object()["deletion_protection"] = protection;
    }
    if (const Json* tags = body->Find("tags"); tags != nullptr && tags->is_object()) {
      Json merged = extras.Find("tags") != nullptr ? *extras.Find("tags") : Json(Json::Object{});
      if (!merged.is_object()) merged = Json(Json::Object{});
      for (const auto& [k, v] : tags->as_object()) {
        // An empty value removes the tag, as Pinecone does.
        if (v.is_string() && v.as_string().empty()) {
          merged.as_object().erase(k);
        } else {
          merged.as_object()[k] = v;
        }
      }
      extras.as_object()["tags"] = merged;
    }
    if (absl::Status s = b.engine->side_store().PutSide(SideKey(info->meta.id), extras.Dump());
        !s.ok()) {
      return ControlError(res, s);
    }
    SendJson(res, 200, IndexModel(b, *info, req.get_header_value("Host")));
  });

  // ---- Data plane ------------------------------------------------------------
  const std::string index = R"(/indexes/([^/]+))";
  svr->Post(index + "/vectors/upsert", [b](const httplib::Request& req, httplib::Response& res) {
    auto body = Body(req);
    if (!body.ok()) return DataError(res, body.status());
    std::string ns;
    if (absl::Status s = OptString(*body, "namespace", &ns); !s.ok()) return DataError(res, s);
    const Json* vectors = body->Find("vectors");
    if (vectors == nullptr || !vectors->is_array()) {
      return DataError(res, absl::InvalidArgumentError("vectors must be a list"));
    }
    std::vector<storage::Record> records;
    for (const Json& v : vectors->as_array()) {
      storage::Record r;
      if (absl::Status s = OptString(v, "id", &r.id); !s.ok()) return DataError(res, s);
      auto values = Floats(v.Find("values"), "values");
      if (!values.ok()) return DataError(res, values.status());
      r.values = *std::move(values);
      auto sparse = Sparse(v.Find("sparseValues"));
      if (!sparse.ok()) return DataError(res, sparse.status());
      r.sparse = *std::move(sparse);
      if (const Json* md = v.Find("metadata"); md != nullptr && !md->is_null()) {
        auto m = storage::MetadataFromJson(*md);
        if (!m.ok()) return DataError(res, m.status());
        r.metadata = *std::move(m);
      }
      records.push_back(std::move(r));
    }
    auto n = b.engine->Upsert(req.matches[1].str(), Namespace(ns), std::move(records));
    if (!n.ok()) return DataError(res, n.status());
    SendJson(res, 200, Json(Json::Object{{"upsertedCount", Json(static_cast<int64_t>(*n))}}));
  });
  svr->Post(index + "/query", [b](const httplib::Request& req, httplib::Response& res) {
    auto body = Body(req);
    if (!body.ok()) return DataError(res, body.status());
    db::QueryRequest q;
    absl::Status s = OptString(*body, "namespace", &q.ns);
    if (s.ok()) s = OptCount(*body, "topK", &q.top_k);
    if (s.ok()) s = OptBool(*body, "includeValues", &q.include_values);
    if (s.ok()) s = OptBool(*body, "includeMetadata", &q.include_metadata);
    if (s.ok()) s = OptString(*body, "id", &q.id);
    if (!s.ok()) return DataError(res, s);
    q.ns = Namespace(q.ns);
    auto vector = Floats(body->Find("vector"), "vector");
    if (!vector.ok()) return DataError(res, vector.status());
    q.vector = *std::move(vector);
    auto sparse = Sparse(body->Find("sparseVector"));
    if (!sparse.ok()) return DataError(res, sparse.status());
    q.sparse = *std::move(sparse);
    if (const Json* f = body->Find("filter"); f != nullptr && !f->is_null()) q.filter = *f;
    const std::string name = req.matches[1].str();
    auto info = b.engine->GetCollection(name);
    if (!info.ok()) return DataError(res, info.status());
    auto r = b.engine->Query(name, q);
    if (!r.ok()) return DataError(res, r.status());
    const bool l2 = info->meta.config.metric == ann::Metric::kL2;
    Json::Array matches;
    for (const db::Match& m : r->matches) {
      Json::Object o;
      o["id"] = m.id;
      // Euclidean scores are squared distances (smaller is closer), as
      // Pinecone reports them; Quiver's own is their negation.
      o["score"] = Json(static_cast<double>(l2 ? -m.score : m.score));
      if (q.include_values) {
        o["values"] = FloatsJson(m.values);
        if (!m.sparse.empty()) o["sparseValues"] = SparseJson(m.sparse);
      }
      if (q.include_metadata && m.metadata && !m.metadata->empty()) {
        o["metadata"] = storage::MetadataToJson(*m.metadata);
      }
      matches.push_back(Json(std::move(o)));
    }
    Json::Object out;
    out["matches"] = Json(std::move(matches));
    out["namespace"] = q.ns;
    out["usage"] = UsageJson();
    SendJson(res, 200, Json(std::move(out)));
  });
  svr->Get(index + "/vectors/fetch", [b](const httplib::Request& req, httplib::Response& res) {
    std::vector<std::string> ids;
    for (size_t i = 0; i < req.get_param_value_count("ids"); ++i) {
      ids.push_back(req.get_param_value("ids", i));
    }
    const std::string ns = Namespace(req.get_param_value("namespace"));
    auto r = b.engine->Fetch(req.matches[1].str(), ns, ids);
    if (!r.ok()) return DataError(res, r.status());
    Json::Object vectors;
    for (const storage::Record& rec : r->records) vectors[rec.id] = RecordJson(rec);
    Json::Object out;
    out["vectors"] = Json(std::move(vectors));
    out["namespace"] = ns;
    out["usage"] = UsageJson();
    SendJson(res, 200, Json(std::move(out)));
  });
  svr->Post(index + "/vectors/update", [b](const httplib::Request& req, httplib::Response& res) {
    auto body = Body(req);
    if (!body.ok()) return DataError(res, body.status());
    db::UpdateSpec u;
    std::string ns;
    absl::Status s = OptString(*body, "id", &u.id);
    if (s.ok()) s = OptString(*body, "namespace", &ns);
    if (!s.ok()) return DataError(res, s);
    if (const Json* v = body->Find("values"); v != nullptr && !v->is_null()) {
      auto values = Floats(v, "values");
      if (!values.ok()) return DataError(res, values.status());
      u.values = *std::move(values);
    }
    if (const Json* sv = body->Find("sparseValues"); sv != nullptr && !sv->is_null()) {
      auto sparse = Sparse(sv);
      if (!sparse.ok()) return DataError(res, sparse.status());
      u.sparse = *std::move(sparse);
    }
    if (const Json* md = body->Find("setMetadata"); md != nullptr && !md->is_null()) {
      u.set_metadata = *md;
    }
    s = b.engine->Update(req.matches[1].str(), Namespace(ns), std::move(u));
    if (!s.ok()) return DataError(res, s);
    SendJson(res, 200, Json(Json::Object{{"matchedRecords", Json(static_cast<int64_t>(1))}}));
  });
  svr->Post(index + "/vectors/delete", [b](const httplib::Request& req, httplib::Response& res) {
    auto body = Body(req);
    if (!body.ok()) return DataError(res, body.status());
    std::string ns;
    bool all = false;
    absl::Status s = OptString(*body, "namespace", &ns);
    if (s.ok()) s = OptBool(*body, "deleteAll", &all);
    if (!s.ok()) return DataError(res, s);
    const std::string name = req.matches[1].str();
    ns = Namespace(ns);
    absl::StatusOr<uint64_t> n;
    if (all) {
      n = b.engine->DeleteAll(name, ns);
    } else if (const Json* ids = body->Find("ids"); ids != nullptr && ids->is_array()) {
      std::vector<std::string> list;
      for (const Json& id : ids->as_array()) {
        if (!id.is_string())
          return DataError(res, absl::InvalidArgumentError("ids must be strings"));
        list.push_back(id.as_string());
      }
      n = b.engine->DeleteIds(name, ns, list);
    } else if (const Json* f = body->Find("filter"); f != nullptr && f->is_object()) {
      n = b.engine->DeleteByFilter(name, ns, *f);
    } else {
      return DataError(res, absl::InvalidArgumentError("delete needs ids, a filter or deleteAll"));
    }
    if (!n.ok()) return DataError(res, n.status());
    SendJson(res, 200, Json(Json::Object{}));
  });
  svr->Post(index + "/describe_index_stats",
            [b](const httplib::Request& req, httplib::Response& res) {
              std::optional<Json> filter;
              if (!req.body.empty()) {
                auto body = Body(req);
                if (!body.ok()) return DataError(res, body.status());
                if (const Json* f = body->Find("filter"); f != nullptr && f->is_object())
                  filter = *f;
              }
              auto st = b.engine->DescribeStats(req.matches[1].str(), filter);
              if (!st.ok()) return DataError(res, st.status());
              Json::Object namespaces;
              for (const auto& [ns, n] : st->namespaces) {
                namespaces[NamespaceName(ns)] =
                    Json(Json::Object{{"vectorCount", Json(static_cast<int64_t>(n.record_count))}});
              }
              Json::Object out;
              out["namespaces"] = Json(std::move(namespaces));
              out["dimension"] = Json(static_cast<int64_t>(st->dimension));
              out["indexFullness"] = Json(0.0);
              out["totalVectorCount"] = Json(static_cast<int64_t>(st->total_record_count));
              out["metric"] = PineconeMetric(st->metric);
              out["vectorType"] = "dense";
              SendJson(res, 200, Json(std::move(out)));
            });
  svr->Get(index + "/vectors/list", [b](const httplib::Request& req, httplib::Response& res) {
    uint32_t limit = 100;
    if (req.has_param("limit")) {
      const std::string l = req.get_param_value("limit");
      char* end = nullptr;
      const long v = std::strtol(l.c_str(), &end, 10);
      if (end == l.c_str() || *end != '\0' || v < 1) {
        return DataError(res, absl::InvalidArgumentError("limit must be a positive integer"));
      }
      limit = static_cast<uint32_t>(v);
    }
    const std::string ns = Namespace(req.get_param_value("namespace"));
    auto r = b.engine->ListIds(req.matches[1].str(), ns, req.get_param_value("prefix"), limit,
                               req.get_param_value("paginationToken"));
    if (!r.ok()) return DataError(res, r.status());
    Json::Array vectors;
    for (const std::string& id : r->ids) vectors.push_back(Json(Json::Object{{"id", Json(id)}}));
    Json::Object out;
    out["vectors"] = Json(std::move(vectors));
    if (!r->next_pagination_token.empty()) {
      out["pagination"] = Json(Json::Object{{"next", Json(r->next_pagination_token)}});
    }
    out["namespace"] = ns;
    out["usage"] = UsageJson();
    SendJson(res, 200, Json(std::move(out)));
  });
}

}  // namespace quiver::server
