#!/usr/bin/env python3
"""Quiver from Python: a collection, records with metadata, a filtered query.

    python3 client/python/example.py --addr 127.0.0.1:50051 [--api-key KEY]

Needs python3-grpcio and python3-protobuf (Debian) and the stubs the build
generates into <build>/python: PYTHONPATH=<build>/python:client/python.
"""

import argparse
import os
import sys

import grpc

from quiver_client import Quiver


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default=os.environ.get("QUIVER_ADDR", "127.0.0.1:50051"))
    parser.add_argument("--api-key", default=os.environ.get("QUIVER_API_KEY"))
    parser.add_argument("--collection", default="python-example")
    args = parser.parse_args()

    with Quiver(args.addr, api_key=args.api_key) as q:
        if args.collection in q.list_collections():
            q.delete_collection(args.collection)
        q.create_collection(args.collection, dimension=3, metric="cosine")
        n = q.upsert(args.collection, [
            {"id": "matrix", "values": [0.9, 0.1, 0.0], "metadata": {"genre": "sf", "year": 1999}},
            {"id": "alien", "values": [0.8, 0.3, 0.1], "metadata": {"genre": "sf", "year": 1979}},
            {"id": "amelie", "values": [0.0, 0.2, 0.9], "metadata": {"genre": "romance",
                                                                     "year": 2001}},
        ])
        print(f"upserted {n}")
        for m in q.query(args.collection, vector=[1.0, 0.0, 0.0], top_k=2):
            print(f"nearest {m['id']} {m['score']:.4f}")
        for m in q.query(args.collection, vector=[1.0, 0.0, 0.0], top_k=3,
                         filter={"year": {"$gte": 1990}}):
            print(f"since 1990 {m['id']} {m['metadata']['year']:.0f}")
        try:
            q.query("no-such-collection", vector=[1.0, 0.0, 0.0])
        except grpc.RpcError as e:
            print(f"error {e.code().name}: {e.details()}")
        q.delete_collection(args.collection)
    return 0


if __name__ == "__main__":
    sys.exit(main())
