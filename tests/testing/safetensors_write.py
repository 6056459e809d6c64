"""Writes safetensors files for the PyTorch reference scripts (tests/*/..._reference.py)."""
import json
import struct

import torch


def write_safetensors(path, tensors, bf16=False):
    """Tensors as float32, or as bfloat16 (the top 16 bits of each float32)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        if bf16:
            data = t.bfloat16().view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            data = t.float().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "BF16" if bf16 else "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
