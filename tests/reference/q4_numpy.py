#!/usr/bin/env python3
"""Independent numpy reference of the shipped *quantized* model's encoder (the q4 file as it is).

Reads a `.shelfwise` file with nothing but the file format's description (ARCHITECTURE.md, "The
model file" and "Quantized inference"): the header, the manifest, the safetensors section (parsed
here, no safetensors package) and the tokenizer. Every quantized weight is decoded from its stored
codes here, not by `shelfwise dequantize`:

- `<name>.q4` / `<name>.q3`: bit fields of 4 or 3 bits, little-endian bit order, each row padded to
  whole bytes, offset binary (field - 2^(bits-1)); block scale = `<name>.qrow` (f16 step a row) x
  `<name>.qscale` (an i8 a block of 32).
- `<name>.q8` + `<name>.scale`: int8 codes, one f32 scale per row or per (row, block of 32).
- `embeddings.word_embeddings.rows`: token id -> row of the pruned word table.

The forward is BERT's (as minilm_numpy.py) in float64, except where the shipped model rounds on
purpose: before every quantized linear layer the activations are quantized per (token, block of
32) to 8 bits (codes in +-127) when every weight code is in -64..=63 (a 4-bit matrix), else to 7
bits (+-63): in f32, `max = max|x|`, `code = round_half_even(x * (act_max / max))`, `scale = max /
act_max` (an all-zero block: scale 0). Each block's integer dot product is exact and is scaled
by the f32 product of the two scales; the rest is float64. Padding is never formed: one title at
a time.

  python3 tests/reference/q4_numpy.py [MODEL] [OUT_JSON]

writes `tests/fixtures/q4_reference.json` (16 titles, see main(): token ids from
the file's own tokenizer.json via the Python `tokenizers` library, and mean-pooled embeddings to 7
significant digits) and prints how far the embeddings move when the activation rounding is changed
(7 bits everywhere, none at all), which is what the Rust test's tolerance must resolve.
Needs numpy and tokenizers (not run by CI: its output is committed).
"""
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np

BLOCK = 32
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

DTYPES = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "I16": np.int16, "U32": np.uint32, "I64": np.int64, "F64": np.float64}


def read_model(path):
    b = open(path, "rb").read()
    assert b[:8] == b"SHLFWISE", "not a shelfwise model"
    version, m = struct.unpack("<II", b[8:16])
    (s,) = struct.unpack("<Q", b[16:24])
    (k,) = struct.unpack("<I", b[24:28])
    # Versions 2-4 add sections (lexical part, stack gate, adaptation) to the same layout.
    assert 1 <= version <= 4 and 28 + m + s + k + 32 == len(b)
    assert hashlib.sha256(b[:-32]).digest() == b[-32:], "checksum"
    manifest = json.loads(b[28 : 28 + m])
    st = b[28 + m : 28 + m + s]
    (n,) = struct.unpack("<Q", st[:8])
    header = json.loads(st[8 : 8 + n])
    data = st[8 + n :]
    tensors = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        lo, hi = v["data_offsets"]
        tensors[name] = np.frombuffer(data[lo:hi], dtype=DTYPES[v["dtype"]]).reshape(v["shape"])
    tokenizer = b[28 + m + s : 28 + m + s + k].decode()
    return manifest, tensors, tokenizer, hashlib.sha256(b).hexdigest()


def unpack(packed, cols, bits):
    """Codes [rows, cols] from rows of packed `bits`-bit offset-binary fields (LSB first)."""
    rows = packed.shape[0]
    bitstream = np.unpackbits(packed, axis=1, bitorder="little")[:, : cols * bits]
    fields = bitstream.reshape(rows, cols, bits).astype(np.int32) @ (1 << np.arange(bits, dtype=np.int32))
    return (fields - (1 << (bits - 1))).astype(np.int8)


def codes_and_scales(t, name):
    """(int8 codes [rows, cols], f32 scales [rows, ceil(cols/32)]) of a quantized weight, or None."""
    if name + ".q8" in t:
        codes = t[name + ".q8"].view(np.int8)
        rows, cols = codes.shape
        s = t[name + ".scale"].astype(np.float32)
        if s.ndim == 1:
            s = np.repeat(s[:, None], -(-cols // BLOCK), axis=1)
        return codes, s
    for bits in (4, 3):
        if name + f".q{bits}" in t:
            packed = t[name + f".q{bits}"]
            block = t[name + ".qscale"].view(np.int8).astype(np.float32)
            cols = block.shape[1] * BLOCK  # every quantized width here is a multiple of 32
            assert packed.shape[1] * 8 == cols * bits
            step = t[name + ".qrow"].astype(np.float32)
            return unpack(packed, cols, bits), (step[:, None] * block).astype(np.float32)
    return None


def dequantize(codes, scales):
    cols = codes.shape[1]
    return codes.astype(np.float32) * np.repeat(scales, BLOCK, axis=1)[:, :cols]


def quantize_activations(x, act_max):
    """Per (row, block of 32), in f32 as the kernels do: codes (int64) and scales (f32)."""
    x = x.astype(np.float32)
    rows, cols = x.shape
    nb = -(-cols // BLOCK)
    xp = np.zeros((rows, nb * BLOCK), np.float32)
    xp[:, :cols] = x
    blocks = xp.reshape(rows, nb, BLOCK)
    mx = np.abs(blocks).max(axis=2)
    live = (mx > 0) & np.isfinite(mx)
    inv = np.where(live, np.float32(act_max) / np.where(live, mx, np.float32(1)), np.float32(0)).astype(np.float32)
    codes = np.clip(np.rint((blocks * inv[:, :, None]).astype(np.float32)), -act_max, act_max).astype(np.int64)
    scales = np.where(live, mx / np.float32(act_max), np.float32(0)).astype(np.float32)
    return codes, scales


class Linear:
    def __init__(self, t, name):
        self.codes, self.scales = codes_and_scales(t, name + ".weight")
        self.bias = t[name + ".bias"].astype(np.float64)
        self.act_max = 127.0 if ((self.codes >= -64) & (self.codes <= 63)).all() else 63.0
        n, k = self.codes.shape
        nb = self.scales.shape[1]
        wp = np.zeros((n, nb * BLOCK), np.int64)
        wp[:, :k] = self.codes
        self.wblocks = wp.reshape(n, nb, BLOCK)
        self.w = dequantize(self.codes, self.scales).astype(np.float64)

    def __call__(self, x, mode):
        """mode: 'q' (the shipped rounding), 'q7' (7 bits whatever the weights), 'f' (none)."""
        if mode == "f":
            return x @ self.w.T + self.bias
        act_max = 63.0 if mode == "q7" else self.act_max
        xc, xs = quantize_activations(x, act_max)
        # Exact integer block sums [rows, n, nb], each times the f32 product of the scales.
        sums = np.einsum("rbk,nbk->rnb", xc, self.wblocks)
        scale = (xs[:, None, :] * self.scales[None, :, :]).astype(np.float32).astype(np.float64)
        return (sums.astype(np.float64) * scale).sum(axis=2) + self.bias


def layer_norm(x, t, name, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * t[name + ".weight"].astype(np.float64) + t[name + ".bias"].astype(np.float64)


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


class QuantizedEncoder:
    def __init__(self, manifest, t):
        cfg = manifest["encoder"]
        self.t, self.h, self.heads, self.eps = t, cfg["hidden"], cfg["heads"], cfg["layer_norm_eps"]
        cs = codes_and_scales(t, "embeddings.word_embeddings.weight")
        self.word = dequantize(*cs).astype(np.float64) if cs else t["embeddings.word_embeddings.weight"].astype(np.float64)
        self.rows = t.get("embeddings.word_embeddings.rows")
        cs = codes_and_scales(t, "embeddings.position_embeddings.weight")
        self.pos = dequantize(*cs).astype(np.float64) if cs else t["embeddings.position_embeddings.weight"].astype(np.float64)
        self.typ = t["embeddings.token_type_embeddings.weight"].astype(np.float64)
        self.layers = []
        for i in range(cfg["layers"]):
            p = f"encoder.layer.{i}."
            names = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"]
            self.layers.append({n: Linear(t, p + n) for n in names})

    def pooled(self, ids, mode="q"):
        ids = np.asarray(ids, dtype=np.int64)
        rows = self.rows[ids] if self.rows is not None else ids
        x = self.word[rows] + self.pos[: len(ids)] + self.typ[0]
        x = layer_norm(x, self.t, "embeddings.LayerNorm", self.eps)
        T, H, nh = len(ids), self.h, self.heads
        hd = H // nh
        for i, L in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            # Q, K and V read the same activations: quantized once, as for their fused matrix.
            q, k, v = (L[n](x, mode).reshape(T, nh, hd).transpose(1, 0, 2) for n in ("attention.self.query", "attention.self.key", "attention.self.value"))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
            a = np.exp(s - s.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            ctx = (a @ v).transpose(1, 0, 2).reshape(T, H)
            x = layer_norm(L["attention.output.dense"](ctx, mode) + x, self.t, p + "attention.output.LayerNorm", self.eps)
            f = gelu(L["intermediate.dense"](x, mode))
            x = layer_norm(L["output.dense"](f, mode) + x, self.t, p + "output.LayerNorm", self.eps)
        return x.mean(0)


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "flipkart-minilm", "model.shelfwise")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "fixtures", "q4_reference.json")
    from tokenizers import Tokenizer

    manifest, t, tok_json, sha = read_model(model)
    tok = Tokenizer.from_str(tok_json)
    tok.no_padding()
    tok.enable_truncation(max_length=manifest["encoder"]["max_tokens"])
    enc = QuantizedEncoder(manifest, t)
    # The f32 reference's titles (tests/fixtures/encoder_reference.json: the 128-token cut, emoji,
    # CJK, one character, punctuation only, HTML, tabs) and five plain catalogue titles.
    with open(os.path.join(ROOT, "tests", "fixtures", "encoder_reference.json"), encoding="utf-8") as f:
        titles = [item["title"] for item in json.load(f)["items"]]
    with open(os.path.join(ROOT, "tests", "fixtures", "titles.txt"), encoding="utf-8") as f:
        titles += [x for x in f.read().split("\n") if x.strip() and x not in titles][:5]
    items, moved = [], {"q7": 0.0, "f": 0.0}
    for title in titles:
        ids = tok.encode(title, add_special_tokens=True).ids
        pooled = enc.pooled(ids)
        for mode in moved:
            moved[mode] = max(moved[mode], float(np.abs(enc.pooled(ids, mode) - pooled).max()))
        items.append({"title": title, "ids": list(ids), "pooled": [float(f"{v:.7g}") for v in pooled]})
    note = (
        "tests/reference/q4_numpy.py: the quantized encoder decoded from the file's stored codes, "
        "float64 forward with the kernels' activation rounding (8 bits against 4-bit codes, else 7, "
        "per token and block of 32); mean-pooled, not normalised, 7 significant digits"
    )
    with open(out, "w", encoding="utf-8") as f:
        head = json.dumps({"model_sha256": sha, "note": note}, ensure_ascii=False)[:-1]
        f.write(head + ', "items": [\n' + ",\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n]}\n")
    print(f"{len(items)} titles -> {out}")
    print(f"max |pooled change| over the titles: 7-bit activations everywhere {moved['q7']:.3e}, no activation rounding {moved['f']:.3e}")


if __name__ == "__main__":
    main()
