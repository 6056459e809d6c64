"""A small Python client for Quiver's gRPC API.

It wraps the stubs generated from proto/quiver/v1/*.proto (package
quiver.v1; generate them with protoc and grpc_python_plugin, as the build
does into <build>/python) and shows that any gRPC language can talk to
quiverd. Errors are grpc.RpcError with the server's status code and message.

    from quiver_client import Quiver
    q = Quiver("127.0.0.1:50051", api_key=None)
    q.create_collection("films", dimension=3)
    q.upsert("films", [{"id": "a", "values": [1, 0, 0], "metadata": {"year": 1999}}])
    for m in q.query("films", vector=[1, 0, 0], top_k=3, filter={"year": {"$gte": 1990}}):
        print(m["id"], m["score"])
"""

import grpc
from google.protobuf import json_format, struct_pb2

from quiver.v1 import (admin_pb2, admin_pb2_grpc, collections_pb2, collections_pb2_grpc,
                       common_pb2, models_pb2, models_pb2_grpc, points_pb2, points_pb2_grpc,
                       rag_pb2, rag_pb2_grpc, search_pb2, search_pb2_grpc)

_METRICS = {"cosine": common_pb2.METRIC_COSINE, "dot": common_pb2.METRIC_DOT,
            "l2": common_pb2.METRIC_L2}


def _struct(d):
    s = struct_pb2.Struct()
    if d:
        s.update(d)
    return s


def _record(r):
    out = common_pb2.Record(id=r["id"], values=r.get("values", []), text=r.get("text", ""))
    if r.get("metadata"):
        out.metadata.update(r["metadata"])
    if r.get("sparse_values"):
        out.sparse_values.indices.extend(r["sparse_values"]["indices"])
        out.sparse_values.values.extend(r["sparse_values"]["values"])
    return out


def _to_dict(message):
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


class Quiver:
    """One channel to quiverd; every method is one RPC (generate and ask stream)."""

    def __init__(self, address, api_key=None, root_certificates=None, tls=False, timeout=30):
        if tls or root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(address, creds)
        else:
            self._channel = grpc.insecure_channel(address)
        self._metadata = [("api-key", api_key)] if api_key else []
        self._timeout = timeout
        self._collections = collections_pb2_grpc.CollectionsStub(self._channel)
        self._points = points_pb2_grpc.PointsStub(self._channel)
        self._search = search_pb2_grpc.SearchStub(self._channel)
        self._models = models_pb2_grpc.ModelsStub(self._channel)
        self._rag = rag_pb2_grpc.RagStub(self._channel)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request, timeout=None):
        return method(request, metadata=self._metadata, timeout=timeout or self._timeout)

    # ---- Server and collections ----
    def health(self):
        return self._call(self._admin.Health, admin_pb2.HealthRequest()).serving

    def server_info(self):
        return _to_dict(self._call(self._admin.ServerInfo, admin_pb2.ServerInfoRequest()))

    def create_collection(self, name, dimension=0, metric="cosine", hnsw=False,
                          text_analyzer=None, embedding_model=None):
        config = collections_pb2.CollectionConfig(name=name, dimension=dimension,
                                                  metric=_METRICS[metric])
        if hnsw:
            config.index.hnsw.SetInParent()
        if text_analyzer:
            config.text.enabled = True
            config.text.analyzer = text_analyzer
        if embedding_model:
            config.embedding.model = embedding_model
        req = collections_pb2.CreateCollectionRequest(config=config)
        return _to_dict(self._call(self._collections.Create, req))

    def list_collections(self):
        resp = self._call(self._collections.List, collections_pb2.ListCollectionsRequest())
        return [c.config.name for c in resp.collections]

    def delete_collection(self, name):
        self._call(self._collections.Delete, collections_pb2.DeleteCollectionRequest(name=name))

    # ---- Records ----
    def upsert(self, collection, records, namespace=""):
        req = points_pb2.UpsertRequest(collection=collection, namespace=namespace,
                                       records=[_record(r) for r in records])
        return self._call(self._points.Upsert, req).upserted_count

    def fetch(self, collection, ids, namespace=""):
        req = points_pb2.FetchRequest(collection=collection, namespace=namespace, ids=ids)
        resp = self._call(self._points.Fetch, req)
        return {r.id: _to_dict(r) for r in resp.records}

    def delete(self, collection, ids=None, filter=None, namespace=""):
        req = points_pb2.DeleteRequest(collection=collection, namespace=namespace)
        if ids is not None:
            req.ids.ids.extend(ids)
        elif filter is not None:
            req.filter.update(filter)
        else:
            req.delete_all = True
        return self._call(self._points.Delete, req).deleted_count

    def stats(self, collection):
        req = points_pb2.DescribeStatsRequest(collection=collection)
        return _to_dict(self._call(self._points.DescribeStats, req))

    def query(self, collection, vector=None, id=None, text=None, top_k=10, filter=None,
              namespace="", include_metadata=True, include_values=False):
        """Best matches first, as dicts with id, score and (optionally) metadata."""
        req = search_pb2.QueryRequest(collection=collection, namespace=namespace, top_k=top_k,
                                      vector=vector or [], id=id or "", text=text or "",
                                      include_metadata=include_metadata,
                                      include_values=include_values)
        if filter:
            req.filter.CopyFrom(_struct(filter))
        resp = self._call(self._search.Query, req)
        out = []
        for m in resp.matches:
            d = {"id": m.id, "score": m.score}
            if include_metadata:
                d["metadata"] = json_format.MessageToDict(m.metadata)
            if include_values:
                d["values"] = list(m.values)
            out.append(d)
        return out

    # ---- Models ----
    def embed(self, texts, normalize=False, model=""):
        req = models_pb2.EmbedRequest(model=model, inputs=texts, normalize=normalize)
        return [list(e.values) for e in self._call(self._models.Embed, req).embeddings]

    def generate(self, prompt, max_tokens=64, temperature=0.0, seed=0, timeout=None):
        """Yields the generated text piece by piece; the last item is a dict of usage."""
        req = models_pb2.GenerateRequest(prompt=prompt)
        req.sampling.max_tokens = max_tokens
        req.sampling.temperature = temperature
        req.sampling.seed = seed
        for resp in self._models.Generate(req, metadata=self._metadata,
                                          timeout=timeout or self._timeout):
            if resp.text:
                yield resp.text
            if resp.finish_reason:
                yield {"prompt_tokens": resp.prompt_tokens,
                       "completion_tokens": resp.completion_tokens,
                       "finish_reason": models_pb2.FinishReason.Name(resp.finish_reason)}

    def ask(self, collection, question, max_tokens=128, top_k=5, namespace="", timeout=None):
        """Returns {"sources": [...], "answer": str, "done": {...}}."""
        req = rag_pb2.AskRequest(collection=collection, question=question, top_k=top_k,
                                 namespace=namespace)
        req.sampling.max_tokens = max_tokens
        out = {"sources": [], "answer": "", "done": None}
        for resp in self._rag.Ask(req, metadata=self._metadata, timeout=timeout or self._timeout):
            kind = resp.WhichOneof("event")
            if kind == "sources":
                out["sources"] = [_to_dict(s) for s in resp.sources.sources]
            elif kind == "generation":
                out["answer"] += resp.generation.text
            elif kind == "done":
                out["done"] = _to_dict(resp.done)
        return out
