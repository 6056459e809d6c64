#!/usr/bin/env python3
"""The Python example client (client/python) against a quiverd this test
starts: collections, records, filtered queries, errors, API keys, and with
the fixtures present, embeddings, generation and Ask.

Run by ctest with PYTHONPATH=<build>/python:client/python and QUIVERD set.
Exits 77 (ctest: skipped) where python3-grpcio or the stubs are missing.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

try:
    import grpc
    from quiver_client import Quiver
except ImportError as e:  # Skipped, with the reason.
    print(f"SKIP: the Python client needs python3-grpcio, python3-protobuf and the stubs: {e}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "client", "python", "example.py")
KEY = "py-secret-key"


def fixtures():
    d = os.environ.get("QUIVER_FIXTURES") or os.environ.get("QUIVER_DEFAULT_FIXTURES", "")
    return d if d and os.path.isdir(d) else ""


class Quiverd:
    """quiverd on a free loopback port, stopped by stop()."""

    def __init__(self, flags):
        self.dir = tempfile.mkdtemp(prefix="quiver-py-")
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen(
            [os.environ["QUIVERD"], "--data_dir=" + os.path.join(self.dir, "data"),
             "--listen=127.0.0.1:0", "--http_listen=", "--port_file=" + port_file] + flags,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline:
            if os.path.exists(port_file):
                with open(port_file) as f:
                    lines = f.read().split()
                if lines:
                    self.address = "127.0.0.1:" + lines[0]
                    return
            if self.proc.poll() is not None:
                raise RuntimeError("quiverd exited: " + self.proc.stderr.read().decode())
            time.sleep(0.02)
        raise RuntimeError("quiverd did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        flags = ["--api_key=" + KEY]
        fx = fixtures()
        cls.models = bool(fx) and os.path.isdir(os.path.join(fx, "stories260K"))
        if cls.models:
            m2v = os.path.join(fx, "model2vec-rs-fixtures", "test-model-float32")
            llm = os.path.join(fx, "stories260K")
            flags += ["--embed-model=" + m2v, "--device=cpu",
                      "--llm-model=" + os.path.join(llm, "stories260K.bin"),
                      "--llm-tokenizer=" + os.path.join(llm, "tok512.bin")]
        cls.server = Quiverd(flags)
        cls.q = Quiver(cls.server.address, api_key=KEY)

    @classmethod
    def tearDownClass(cls):
        cls.q.close()
        cls.server.stop()

    def test_the_example_runs(self):
        env = dict(os.environ, QUIVER_API_KEY=KEY)
        out = subprocess.run([sys.executable, EXAMPLE, "--addr", self.server.address],
                             env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(lines[0], "upserted 3")
        self.assertTrue(lines[1].startswith("nearest matrix "), lines)
        self.assertTrue(lines[2].startswith("nearest alien "), lines)
        self.assertEqual(lines[3], "since 1990 matrix 1999")
        self.assertEqual(lines[4], "since 1990 amelie 2001")
        self.assertTrue(lines[5].startswith("error NOT_FOUND: "), lines)
        self.assertIn("no-such-collection", lines[5])

    def test_records_queries_and_errors(self):
        q = self.q
        q.create_collection("py", dimension=4, metric="l2", hnsw=True)
        self.assertIn("py", q.list_collections())
        records = [{"id": f"r{i}", "values": [float(i), 0.0, 0.0, 1.0],
                    "metadata": {"even": i % 2 == 0, "i": i}} for i in range(50)]
        self.assertEqual(q.upsert("py", records, namespace="ns"), 50)
        self.assertEqual(q.stats("py")["total_record_count"], "50")
        hits = q.query("py", vector=[10.2, 0, 0, 1], top_k=3, namespace="ns")
        self.assertEqual([h["id"] for h in hits], ["r10", "r11", "r9"])
        hits = q.query("py", id="r10", top_k=2, filter={"even": False}, namespace="ns")
        self.assertEqual(sorted(h["id"] for h in hits), ["r11", "r9"])
        got = q.fetch("py", ["r3", "missing"], namespace="ns")
        self.assertEqual(list(got), ["r3"])
        self.assertEqual(got["r3"]["metadata"]["i"], 3)
        self.assertEqual(q.delete("py", filter={"even": True}, namespace="ns"), 25)
        self.assertEqual(q.delete("py", ids=["r1"], namespace="ns"), 1)
        self.assertEqual(len(q.query("py", vector=[0, 0, 0, 1], top_k=100, namespace="ns")), 24)
        # Bad input: the server's status code and a message naming the fault.
        with self.assertRaises(grpc.RpcError) as e:
            q.upsert("py", [{"id": "bad", "values": [1.0, 2.0]}])
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("expects 4", e.exception.details())
        with self.assertRaises(grpc.RpcError) as e:
            q.create_collection("py", dimension=4)
        self.assertEqual(e.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
        q.delete_collection("py")

    def test_api_keys(self):
        with Quiver(self.server.address) as anonymous:
            with self.assertRaises(grpc.RpcError) as e:
                anonymous.list_collections()
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            self.assertTrue(anonymous.health())  # Health stays open.
        with Quiver(self.server.address, api_key="wrong") as wrong:
            with self.assertRaises(grpc.RpcError) as e:
                wrong.list_collections()
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

    def test_models_and_ask(self):
        if not self.models:
            self.skipTest("fixtures stories260K and model2vec-rs-fixtures not found")
        q = self.q
        vectors = q.embed(["hello world", "cats"], normalize=True)
        self.assertEqual(len(vectors), 2)
        self.assertAlmostEqual(sum(v * v for v in vectors[0]), 1.0, places=4)
        pieces = list(q.generate("Once upon a time", max_tokens=8))
        usage = pieces[-1]
        self.assertEqual(usage["completion_tokens"], 8)
        self.assertEqual(usage["finish_reason"], "FINISH_REASON_LENGTH")
        self.assertTrue("".join(pieces[:-1]))
        # The same greedy text twice.
        self.assertEqual(pieces, list(q.generate("Once upon a time", max_tokens=8)))
        q.create_collection("kb", embedding_model="test-model-float32")
        q.upsert("kb", [{"id": "lily", "text": "Lily had a red ball."},
                        {"id": "tom", "text": "Tom liked to swim in the lake."}])
        answer = q.ask("kb", "What did Lily have?", max_tokens=10, top_k=2)
        self.assertEqual(sorted(s["record_id"] for s in answer["sources"]), ["lily", "tom"])
        self.assertEqual(answer["done"]["completion_tokens"], 10)
        self.assertTrue(answer["answer"])
        q.delete_collection("kb")


if __name__ == "__main__":
    unittest.main()
