// The quiver.v1 services as gRPC sees them: every method is a raw callback
// method (calls.h) that queues the call and runs the handler of services.h
// on a CallQueue worker. Calls that mostly wait on a model (embedding,
// reranking, generation, documents, Ask) use the model queue, the rest the
// data queue; Admin.Health runs at once.
#ifndef QUIVER_SERVER_GRPC_SERVICES_H_
#define QUIVER_SERVER_GRPC_SERVICES_H_

#include "server/calls.h"
#include "server/services.h"

namespace quiver::server {

// One raw unary method forwarding to handler_->Method on `queue`.
#define QUIVER_RAW_UNARY(Method, Request, Response, queue)                                       \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* in, \
                                   grpc::ByteBuffer* out) override {                             \
    return RunUnary<v1::Request, v1::Response>(                                                  \
        queue, ctx, in, out,                                                                     \
        [h = handler_](grpc::CallbackServerContext* c, const v1::Request* r, v1::Response* o) {  \
          return h->Method(c, r, o);                                                             \
        });                                                                                      \
  }
// One raw server-streaming method.
#define QUIVER_RAW_STREAM(Method, Request, Response, queue)                                 \
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Method(grpc::CallbackServerContext* ctx,      \
                                                     const grpc::ByteBuffer* in) override { \
    return RunStream<v1::Request, v1::Response>(                                            \
        queue, ctx, in,                                                                     \
        [h = handler_](grpc::CallbackServerContext* c, const v1::Request* r,                \
                       ResponseWriter<v1::Response>* w) { return h->Method(c, r, w); });    \
  }

// The two queues every service draws from.
struct CallQueues {
  CallQueue* data = nullptr;
  CallQueue* model = nullptr;
};

// A generated service (all methods raw callback) bound to its handler and
// the queues.
template <class RawService, class Handler>
class Bound : public RawService {
 public:
  Bound(Handler* handler, CallQueues q) : handler_(handler), q_(q) {}

 protected:
  Handler* const handler_;
  const CallQueues q_;
};

class GrpcCollections final
    : public Bound<
          v1::Collections::WithRawCallbackMethod_Create<v1::Collections::WithRawCallbackMethod_Get<
              v1::Collections::WithRawCallbackMethod_List<
                  v1::Collections::WithRawCallbackMethod_Delete<v1::Collections::Service>>>>,
          CollectionsService> {
 public:
  using Bound::Bound;
  QUIVER_RAW_UNARY(Create, CreateCollectionRequest, CreateCollectionResponse, q_.data)
  QUIVER_RAW_UNARY(Get, GetCollectionRequest, GetCollectionResponse, q_.data)
  QUIVER_RAW_UNARY(List, ListCollectionsRequest, ListCollectionsResponse, q_.data)
  QUIVER_RAW_UNARY(Delete, DeleteCollectionRequest, DeleteCollectionResponse, q_.data)
};

class GrpcPoints final
    : public Bound<
          v1::Points::WithRawCallbackMethod_Upsert<v1::Points::WithRawCallbackMethod_Fetch<
              v1::Points::WithRawCallbackMethod_Update<v1::Points::WithRawCallbackMethod_Delete<
                  v1::Points::WithRawCallbackMethod_ListIds<
                      v1::Points::WithRawCallbackMethod_DescribeStats<
                          v1::Points::WithRawCallbackMethod_ListNamespaces<
                              v1::Points::Service>>>>>>>,
          PointsService> {
 public:
  using Bound::Bound;
  // Upserts may embed text through the collection's model.
  QUIVER_RAW_UNARY(Upsert, UpsertRequest, UpsertResponse, q_.model)
  QUIVER_RAW_UNARY(Fetch, FetchRequest, FetchResponse, q_.data)
  QUIVER_RAW_UNARY(Update, UpdateRequest, UpdateResponse, q_.model)
  QUIVER_RAW_UNARY(Delete, DeleteRequest, DeleteResponse, q_.data)
  QUIVER_RAW_UNARY(ListIds, ListIdsRequest, ListIdsResponse, q_.data)
  QUIVER_RAW_UNARY(DescribeStats, DescribeStatsRequest, DescribeStatsResponse, q_.data)
  QUIVER_RAW_UNARY(ListNamespaces, ListNamespacesRequest, ListNamespacesResponse, q_.data)
};

class GrpcSearch final
    : public Bound<v1::Search::WithRawCallbackMethod_Query<v1::Search::Service>, SearchService> {
 public:
  using Bound::Bound;
  QUIVER_RAW_UNARY(Query, QueryRequest, QueryResponse, q_.data)
};

class GrpcModels final
    : public Bound<v1::Models::WithRawCallbackMethod_Embed<v1::Models::WithRawCallbackMethod_Rerank<
                       v1::Models::WithRawCallbackMethod_Generate<
                           v1::Models::WithRawCallbackMethod_ListModels<v1::Models::Service>>>>,
                   ModelsService> {
 public:
  using Bound::Bound;
  QUIVER_RAW_UNARY(Embed, EmbedRequest, EmbedResponse, q_.model)
  QUIVER_RAW_UNARY(Rerank, RerankRequest, RerankResponse, q_.model)
  QUIVER_RAW_STREAM(Generate, GenerateRequest, GenerateResponse, q_.model)
  QUIVER_RAW_UNARY(ListModels, ListModelsRequest, ListModelsResponse, q_.data)
};

class GrpcRag final
    : public Bound<
          v1::Rag::WithRawCallbackMethod_UpsertDocument<v1::Rag::WithRawCallbackMethod_GetDocument<
              v1::Rag::WithRawCallbackMethod_ListDocuments<
                  v1::Rag::WithRawCallbackMethod_DeleteDocument<
                      v1::Rag::WithRawCallbackMethod_Ask<v1::Rag::Service>>>>>,
          RagService> {
 public:
  using Bound::Bound;
  QUIVER_RAW_UNARY(UpsertDocument, UpsertDocumentRequest, UpsertDocumentResponse, q_.model)
  QUIVER_RAW_UNARY(GetDocument, GetDocumentRequest, GetDocumentResponse, q_.data)
  QUIVER_RAW_UNARY(ListDocuments, ListDocumentsRequest, ListDocumentsResponse, q_.data)
  QUIVER_RAW_UNARY(DeleteDocument, DeleteDocumentRequest, DeleteDocumentResponse, q_.data)
  QUIVER_RAW_STREAM(Ask, AskRequest, AskResponse, q_.model)
};

class GrpcAdmin final
    : public Bound<
          v1::Admin::WithRawCallbackMethod_Health<
              v1::Admin::WithRawCallbackMethod_ServerInfo<v1::Admin::WithRawCallbackMethod_Snapshot<
                  v1::Admin::WithRawCallbackMethod_ListSnapshots<v1::Admin::Service>>>>,
          AdminService> {
 public:
  using Bound::Bound;
  // Health answers at once, however busy the queues are.
  QUIVER_RAW_UNARY(Health, HealthRequest, HealthResponse, nullptr)
  QUIVER_RAW_UNARY(ServerInfo, ServerInfoRequest, ServerInfoResponse, q_.data)
  QUIVER_RAW_UNARY(Snapshot, SnapshotRequest, SnapshotResponse, q_.data)
  QUIVER_RAW_UNARY(ListSnapshots, ListSnapshotsRequest, ListSnapshotsResponse, q_.data)
};

#undef QUIVER_RAW_UNARY
#undef QUIVER_RAW_STREAM

}  // namespace quiver::server

#endif  // QUIVER_SERVER_GRPC_SERVICES_H_
