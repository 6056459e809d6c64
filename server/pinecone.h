// Pinecone-compatible REST routes on the HTTP server, so the official
// Pinecone clients work given only a controller URL and a key: the control
// plane (/indexes: create, describe, list, configure, delete; an index is a
// Quiver collection, and its `host` points back here) and the data plane
// under /indexes/{name} (vectors upsert, fetch, update, delete, list; query;
// describe_index_stats), with namespaces ("__default__" is ""), camelCase
// data-plane JSON and Pinecone's error bodies.
#ifndef QUIVER_SERVER_PINECONE_H_
#define QUIVER_SERVER_PINECONE_H_

#include "server/http.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace quiver::server {

void RegisterPineconeRoutes(httplib::Server* server, const HttpBackends& backends);

// POST /rerank in Pinecone's shape ({model, query, documents, top_n,
// return_documents, rank_fields} -> {model, data: [{index, score,
// document}], usage}); the route serves it when the request carries
// X-Pinecone-Api-Version, the Jina/Cohere shape otherwise.
void PineconeRerank(const HttpBackends& backends, const httplib::Request& req,
                    httplib::Response& res);

// True for the Pinecone routes that change data (for read-only keys).
bool IsPineconeWrite(std::string_view method, std::string_view path);

}  // namespace quiver::server

#endif  // QUIVER_SERVER_PINECONE_H_
