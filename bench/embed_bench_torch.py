#!/usr/bin/python3
"""PyTorch side of embed_bench: writes a random BERT of the given shape as a
Hugging Face directory (tests/embed/bert_reference.py's model and writer) and
times torch's forward pass on it.

usage: embed_bench_torch.py OUT_DIR TOKENIZER_JSON --hidden=384 --layers=6
         --heads=12 --intermediate=1536 --seq=128 --batches=1,8,32,128 --rounds=5
Prints one line per batch size: "torch batch=B ms=M" (median of rounds).
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "embed"))
import bert_reference as ref  # noqa: E402
import torch  # noqa: E402


def main():
    out, tok = sys.argv[1], sys.argv[2]
    opts = dict(a[2:].split("=", 1) for a in sys.argv[3:] if a.startswith("--"))
    ref.HIDDEN = int(opts.get("hidden", 384))
    ref.LAYERS = int(opts.get("layers", 6))
    ref.HEADS = int(opts.get("heads", 12))
    ref.INTERMEDIATE = int(opts.get("intermediate", 1536))
    ref.MAX_POS = 512
    seq = int(opts.get("seq", 128))
    rounds = int(opts.get("rounds", 5))
    batches = [int(b) for b in opts.get("batches", "1,8,32,128").split(",")]
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(7)
    import json
    with open(tok) as f:
        vocab = len(json.load(f)["model"]["vocab"])
    model = ref.Bert(vocab).eval()
    os.makedirs(out, exist_ok=True)
    import shutil
    shutil.copy(tok, os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"model_type": "bert", "vocab_size": vocab, "hidden_size": ref.HIDDEN,
                   "num_hidden_layers": ref.LAYERS, "num_attention_heads": ref.HEADS,
                   "intermediate_size": ref.INTERMEDIATE, "max_position_embeddings": ref.MAX_POS,
                   "type_vocab_size": ref.TYPES, "layer_norm_eps": ref.EPS, "hidden_act": "gelu"}, f)
    ref.write_safetensors(os.path.join(out, "model.safetensors"), model.tensors("", False))
    print(f"torch {torch.__version__} threads={torch.get_num_threads()}", flush=True)
    with torch.inference_mode():
        for b in batches:
            ids = torch.randint(1000, vocab, (b, seq))
            types = torch.zeros((b, seq), dtype=torch.long)
            model(ids, types)  # Warm-up.
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                model(ids, types)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"torch batch={b} ms={statistics.median(times):.3f}", flush=True)


if __name__ == "__main__":
    main()
