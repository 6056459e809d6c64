#!/usr/bin/python3
"""Independent Llama / Qwen2 reference for tests/llm/hf_model_test.cc.

Builds a small random-initialised decoder from torch.nn layers (no
transformers package) the way Hugging Face's modeling_llama / modeling_qwen2
compute it: rotate-half RoPE (inv_freq = 1 / theta^(2i/d), with "linear" or
"llama3" rope_scaling), grouped-query attention, RMSNorm, SwiGLU, optional
q/k/v biases, tied or separate lm_head. Writes a Hugging Face directory
(config.json, model.safetensors in float32 or, for qwen2, two bfloat16
shards with an index, tokenizer.json
as a small byte-level BPE, tokenizer_config.json with a ChatML template)
and <out>/expected.json with the logits of every position of IDS.

usage: hf_reference.py OUT_DIR llama|qwen2 IDS_JSON
"""
import json
import math
import os
import sys

import torch
from torch import nn

sys.dont_write_bytecode = True  # No __pycache__ in the source tree.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from safetensors_write import write_safetensors  # noqa: E402

HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE, MAX_POS = 64, 2, 4, 2, 160, 256


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def inv_freq(theta, dim, scaling):
    f = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if scaling is None:
        return f
    if scaling["rope_type"] == "linear":
        return f / scaling["factor"]
    # llama3
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    wavelen = 2 * math.pi / f
    out = torch.where(wavelen > low_wavelen, f / factor, f)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, out)


class Layer(nn.Module):
    def __init__(self, bias):
        super().__init__()
        hd = HIDDEN // HEADS
        self.q = nn.Linear(HIDDEN, HEADS * hd, bias=bias)
        self.k = nn.Linear(HIDDEN, KV_HEADS * hd, bias=bias)
        self.v = nn.Linear(HIDDEN, KV_HEADS * hd, bias=bias)
        self.o = nn.Linear(HEADS * hd, HIDDEN, bias=False)
        self.gate = nn.Linear(HIDDEN, INTERMEDIATE, bias=False)
        self.up = nn.Linear(HIDDEN, INTERMEDIATE, bias=False)
        self.down = nn.Linear(INTERMEDIATE, HIDDEN, bias=False)
        self.ln1 = nn.Parameter(torch.empty(HIDDEN).uniform_(0.5, 1.5))
        self.ln2 = nn.Parameter(torch.empty(HIDDEN).uniform_(0.5, 1.5))

    def forward(self, x, cos, sin, eps):
        L = x.shape[0]
        hd = HIDDEN // HEADS
        h = rms_norm(x, self.ln1, eps)
        q = self.q(h).view(L, HEADS, hd).transpose(0, 1)
        k = self.k(h).view(L, KV_HEADS, hd).transpose(0, 1)
        v = self.v(h).view(L, KV_HEADS, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(HEADS // KV_HEADS, dim=0)
        v = v.repeat_interleave(HEADS // KV_HEADS, dim=0)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        mask = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)
        p = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        x = x + self.o((p @ v).transpose(0, 1).reshape(L, HIDDEN))
        h = rms_norm(x, self.ln2, eps)
        return x + self.down(nn.functional.silu(self.gate(h)) * self.up(h))


def byte_chars():
    out, n = [], 256
    for b in range(256):
        if 33 <= b <= 126 or 161 <= b <= 172 or b >= 174:
            out.append(chr(b))
        else:
            out.append(chr(n))
            n += 1
    return out


def tokenizer_json(added):
    vocab = {c: i for i, c in enumerate(byte_chars())}
    merges = ["\u0120 t", "h e", "\u0120t he", "\u0120 a", "i n", "\u0120a n", "\u0120an d"]
    for m in merges:
        a, b = m.split(" ")
        vocab[a + b] = len(vocab)
    return {
        "version": "1.0",
        "added_tokens": [{"id": len(vocab) + i, "content": t, "special": True, "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False}
                         for i, t in enumerate(added)],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": merges},
    }


def main():
    out, arch, ids_path = sys.argv[1:4]
    qwen = arch == "qwen2"
    torch.manual_seed(7 if qwen else 11)
    added = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = tokenizer_json(added)
    vocab = len(tok["model"]["vocab"]) + len(added) + 20  # Padded, as Qwen2's is.
    theta = 1000000.0 if qwen else 10000.0
    scaling = ({"rope_type": "linear", "factor": 2.0} if qwen else
               {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
    eps = 1e-6 if qwen else 1e-5
    layers = nn.ModuleList([Layer(qwen) for _ in range(LAYERS)])
    embed = nn.Embedding(vocab, HIDDEN)
    norm = torch.empty(HIDDEN).uniform_(0.5, 1.5)
    lm_head = embed.weight if qwen else nn.Linear(HIDDEN, vocab, bias=False).weight
    with torch.no_grad():
        embed.weight.normal_(0, 0.5)
        for L in layers:  # Non-trivial biases.
            for lin in (L.q, L.k, L.v):
                if lin.bias is not None:
                    lin.bias.normal_(0, 0.3)
        if qwen:  # Qwen2 is written in bfloat16: compute with the rounded weights.
            for prm in list(layers.parameters()) + [embed.weight]:
                prm.copy_(prm.bfloat16().float())
            norm = norm.bfloat16().float()

    os.makedirs(out, exist_ok=True)
    config = {"architectures": ["Qwen2ForCausalLM" if qwen else "LlamaForCausalLM"],
              "model_type": arch, "vocab_size": vocab, "hidden_size": HIDDEN,
              "intermediate_size": INTERMEDIATE, "num_hidden_layers": LAYERS,
              "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
              "max_position_embeddings": MAX_POS, "rms_norm_eps": eps, "rope_theta": theta,
              "rope_scaling": scaling, "tie_word_embeddings": qwen, "hidden_act": "silu",
              "bos_token_id": None if qwen else len(tok["model"]["vocab"]),
              "eos_token_id": len(tok["model"]["vocab"]) + 2 if qwen else len(tok["model"]["vocab"])}
    if qwen:
        config["use_sliding_window"] = False
        config["sliding_window"] = 32
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    tok_config = {"eos_token": "<|im_end|>" if qwen else "<|endoftext|>",
                  "bos_token": None if qwen else "<|endoftext|>",
                  "chat_template": ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                                    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
                                    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tok_config, f)

    tensors = {"model.embed_tokens.weight": embed.weight, "model.norm.weight": norm}
    if not qwen:
        tensors["lm_head.weight"] = lm_head
    for i, L in enumerate(layers):
        p = f"model.layers.{i}."
        for name, lin in [("self_attn.q_proj", L.q), ("self_attn.k_proj", L.k), ("self_attn.v_proj", L.v),
                          ("self_attn.o_proj", L.o), ("mlp.gate_proj", L.gate), ("mlp.up_proj", L.up),
                          ("mlp.down_proj", L.down)]:
            tensors[p + name + ".weight"] = lin.weight
            if lin.bias is not None:
                tensors[p + name + ".bias"] = lin.bias
        tensors[p + "input_layernorm.weight"] = L.ln1
        tensors[p + "post_attention_layernorm.weight"] = L.ln2
    if qwen:  # Two shards and an index.
        names = sorted(tensors)
        shards = [names[: len(names) // 2], names[len(names) // 2:]]
        weight_map = {}
        for s, part in enumerate(shards):
            fname = f"model-0000{s + 1}-of-00002.safetensors"
            write_safetensors(os.path.join(out, fname), {n: tensors[n] for n in part}, bf16=True)
            weight_map.update({n: fname for n in part})
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f)
    else:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors)

    with open(ids_path) as f:
        ids = json.load(f)
    with torch.no_grad():
        x = embed(torch.tensor(ids))
        freqs = torch.outer(torch.arange(len(ids)).float(), inv_freq(theta, HIDDEN // HEADS, scaling))
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        for L in layers:
            x = L(x, cos, sin, eps)
        logits = rms_norm(x, norm, eps) @ lm_head.t()
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"logits": logits.tolist()}, f)


if __name__ == "__main__":
    main()
