#!/usr/bin/python3
"""Independent BERT reference for tests/embed/bert_test.cc.

Builds a small random-initialised BERT from torch.nn layers (no transformers
package), writes it as a Hugging Face directory (config.json,
model.safetensors with the standard BERT tensor names, tokenizer.json,
sentence-transformers modules.json + mean pooling + Normalize), and writes
the model's outputs for the given token ids to <out>/expected.json:
  hidden: per sequence, the last hidden states (run one sequence at a time),
  pooled: mean-pooled, L2-normalised sentence embeddings,
  logits: with --cross, the cross-encoder's first logit per sequence
          (pooler tanh(dense(CLS)) -> classifier), tensors under "bert.".

usage: bert_reference.py OUT_DIR TOKENIZER_JSON IDS_JSON [--cross]
IDS_JSON: [{"ids": [...], "type_ids": [...]}, ...]
"""
import json
import math
import os
import shutil
import sys

import torch
from torch import nn
from torch.nn import functional as F

sys.dont_write_bytecode = True  # No __pycache__ in the source tree.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from safetensors_write import write_safetensors  # noqa: E402

HIDDEN, LAYERS, HEADS, INTERMEDIATE, MAX_POS, TYPES, EPS = 64, 2, 4, 128, 128, 2, 1e-12


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.out = nn.Linear(HIDDEN, HIDDEN)
        self.ln1 = nn.LayerNorm(HIDDEN, eps=EPS)
        self.up = nn.Linear(HIDDEN, INTERMEDIATE)
        self.down = nn.Linear(INTERMEDIATE, HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN, eps=EPS)

    def forward(self, x):
        b, l, _ = x.shape
        hd = HIDDEN // HEADS

        def heads(t):
            return t.view(b, l, HEADS, hd).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        ctx = (p @ v).transpose(1, 2).reshape(b, l, HIDDEN)
        a = self.ln1(self.out(ctx) + x)
        return self.ln2(self.down(F.gelu(self.up(a))) + a)


class Bert(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.word = nn.Embedding(vocab, HIDDEN)
        self.pos = nn.Embedding(MAX_POS, HIDDEN)
        self.segment = nn.Embedding(TYPES, HIDDEN)
        self.ln = nn.LayerNorm(HIDDEN, eps=EPS)
        self.layers = nn.ModuleList([Layer() for _ in range(LAYERS)])
        self.pooler = nn.Linear(HIDDEN, HIDDEN)
        self.classifier = nn.Linear(HIDDEN, 1)

    def forward(self, ids, types):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.ln(self.word(ids) + self.pos(pos) + self.segment(types))
        for layer in self.layers:
            x = layer(x)
        return x

    def tensors(self, prefix, cross):
        t = {
            "embeddings.word_embeddings.weight": self.word.weight,
            "embeddings.position_embeddings.weight": self.pos.weight,
            "embeddings.token_type_embeddings.weight": self.segment.weight,
            "embeddings.LayerNorm.weight": self.ln.weight,
            "embeddings.LayerNorm.bias": self.ln.bias,
        }
        for i, L in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            for name, mod in [("attention.self.query", L.query), ("attention.self.key", L.key),
                              ("attention.self.value", L.value), ("attention.output.dense", L.out),
                              ("attention.output.LayerNorm", L.ln1), ("intermediate.dense", L.up),
                              ("output.dense", L.down), ("output.LayerNorm", L.ln2)]:
                t[p + name + ".weight"] = mod.weight
                t[p + name + ".bias"] = mod.bias
        out = {prefix + k: v for k, v in t.items()}
        if cross:
            out[prefix + "pooler.dense.weight"] = self.pooler.weight
            out[prefix + "pooler.dense.bias"] = self.pooler.bias
            out["classifier.weight"] = self.classifier.weight
            out["classifier.bias"] = self.classifier.bias
        return out


def main():
    out, tok_path, ids_path = sys.argv[1:4]
    cross = "--cross" in sys.argv
    torch.manual_seed(1234 if not cross else 4321)
    with open(tok_path) as f:
        vocab = len(json.load(f)["model"]["vocab"])
    model = Bert(vocab)
    with torch.no_grad():  # Non-trivial norms and embeddings.
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            if isinstance(m, nn.Embedding):
                m.weight.normal_(0, 0.5)
    os.makedirs(out, exist_ok=True)
    shutil.copy(tok_path, os.path.join(out, "tokenizer.json"))
    config = {"architectures": ["BertForSequenceClassification" if cross else "BertModel"],
              "model_type": "bert", "vocab_size": vocab, "hidden_size": HIDDEN,
              "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "intermediate_size": INTERMEDIATE, "max_position_embeddings": MAX_POS,
              "type_vocab_size": TYPES, "layer_norm_eps": EPS, "hidden_act": "gelu",
              "position_embedding_type": "absolute"}
    if cross:
        config["id2label"] = {"0": "LABEL_0"}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f)
    write_safetensors(os.path.join(out, "model.safetensors"),
                      model.tensors("bert." if cross else "", cross))
    if not cross:
        with open(os.path.join(out, "modules.json"), "w") as f:
            json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                       {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                       {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}], f)
        os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
        with open(os.path.join(out, "1_Pooling", "config.json"), "w") as f:
            json.dump({"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": False,
                       "pooling_mode_mean_tokens": True}, f)
    with open(ids_path) as f:
        batch = json.load(f)
    result = {"hidden": [], "pooled": [], "logits": []}
    with torch.no_grad():
        for seq in batch:
            ids = torch.tensor([seq["ids"]])
            types = torch.tensor([seq["type_ids"]])
            h = model(ids, types)[0]
            result["hidden"].append(h.flatten().tolist())
            result["pooled"].append(F.normalize(h.mean(dim=0), dim=0).tolist())
            if cross:
                pooled = torch.tanh(model.pooler(h[0]))
                result["logits"].append(model.classifier(pooled)[0].item())
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
