#!/usr/bin/env python3
"""Turns GloVe word vectors into a static embedding model in model2vec's layout.

GloVe files are text, one word per line followed by its vector components
("the 0.418 0.24968 ..."), plain or inside a .zip. The output directory holds
what quiverd --embed-model loads as a model2vec model:

  config.json        model_type "model2vec", hidden_dim, normalize true
  model.safetensors  "embeddings": float32 [vocabulary, dimension]
  tokenizer.json     a WordPiece tokenizer over the GloVe words (lower-cased,
                     split on whitespace and punctuation as BERT does); words
                     not in the vocabulary become [UNK], which the model skips

A text's embedding is then the normalised mean of its known words' vectors.
With --zipf (the default; --no-zipf turns it off) each word's vector is first
scaled by log(1 + rank), rank being its 1-based line number: GloVe files list
words most frequent first, so frequent words ("the", "of") weigh less in the
mean, as inverse-frequency weighting does.

  scripts/glove_to_model2vec.py glove.6B.50d.txt OUT_DIR [--max-words N]
  scripts/glove_to_model2vec.py glove.6B.50d.10k.zip OUT_DIR
"""
import argparse
import array
import io
import json
import math
import os
import struct
import sys
import zipfile


def read_lines(path):
    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(".txt")]
            if not names:
                sys.exit(f"{path}: no .txt file inside")
            with z.open(names[0]) as f:
                for line in io.TextIOWrapper(f, encoding="utf-8"):
                    yield line
    else:
        with open(path, encoding="utf-8") as f:
            yield from f


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("glove", help="GloVe .txt or .zip")
    ap.add_argument("out", help="output directory (created)")
    ap.add_argument("--max-words", type=int, default=0, help="keep the first N words (0: all)")
    ap.add_argument("--zipf", action=argparse.BooleanOptionalAction, default=True,
                    help="scale each vector by log(1 + rank) (default on)")
    args = ap.parse_args()

    specials = ["[PAD]", "[UNK]"]
    words, values, dim = [], array.array("f"), None
    seen = set(specials)
    for n, line in enumerate(read_lines(args.glove), 1):
        parts = line.rstrip("\n").split(" ")
        if len(parts) < 2:
            continue
        word, vec = parts[0], parts[1:]
        if dim is None:
            dim = len(vec)
        if len(vec) != dim:
            sys.exit(f"{args.glove}:{n}: {len(vec)} values; the first line had {dim}")
        if word in seen or not word or word.startswith("##"):
            continue
        seen.add(word)
        words.append(word)
        scale = math.log(1 + n) if args.zipf else 1.0
        values.extend(float(v) * scale for v in vec)
        if args.max_words and len(words) == args.max_words:
            break
    if dim is None or not words:
        sys.exit(f"{args.glove}: no vectors found")

    os.makedirs(args.out, exist_ok=True)
    rows = len(specials) + len(words)
    table = array.array("f", [0.0] * (len(specials) * dim))
    table.extend(values)
    if sys.byteorder != "little":
        table.byteswap()
    data = table.tobytes()
    header = json.dumps({
        "__metadata__": {"source": os.path.basename(args.glove)},
        "embeddings": {"dtype": "F32", "shape": [rows, dim], "data_offsets": [0, len(data)]},
    }, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    with open(os.path.join(args.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        f.write(data)

    vocab = {w: i for i, w in enumerate(specials + words)}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True} for i, t in enumerate(specials)
        ],
        "normalizer": {"type": "BertNormalizer", "clean_text": True,
                       "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": None,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False)
    config = {"model_type": "model2vec", "architectures": ["StaticModel"],
              "tokenizer_name": "glove", "apply_pca": None, "apply_zipf": False,
              "hidden_dim": dim, "seq_length": 1000000, "normalize": True}
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"{args.out}: {len(words)} words, {dim} dimensions")


if __name__ == "__main__":
    main()
